import { describe, expect, it } from 'vitest';
import { NinjaAuthConfigError, type NinjaAuthOptions } from '../../src/index.js';
import { parseOptions } from '../../src/options.js';

const TOKEN_URL = 'https://idp.example.com/oauth/token';
const noEnv = {};

function configError(options: unknown, env: Record<string, string> = noEnv): NinjaAuthConfigError {
  try {
    parseOptions(options as NinjaAuthOptions, env);
  } catch (error) {
    expect(error).toBeInstanceOf(NinjaAuthConfigError);
    return error as NinjaAuthConfigError;
  }
  throw new Error('expected a NinjaAuthConfigError');
}

describe('options and the environment', () => {
  it('a missing token endpoint names the option and its environment variable, and the issuer alternative', () => {
    const error = configError({});
    expect(error.message).toContain('upstream.tokenUrl');
    expect(error.message).toContain('NINJA_AUTH_TOKEN_URL');
    expect(error.message).toContain('NINJA_AUTH_ISSUER');
    expect(error).toMatchObject({ option: 'upstream.tokenUrl', envVar: 'NINJA_AUTH_TOKEN_URL', code: 'NINJA_AUTH_CONFIG' });
  });

  it('everything that has a variable can come from the environment', () => {
    const config = parseOptions(undefined, {
      NINJA_AUTH_TOKEN_URL: TOKEN_URL,
      NINJA_AUTH_REVOKE_URL: 'https://idp.example.com/oauth/revoke',
      NINJA_AUTH_CLIENT_ID: 'env-client',
      NINJA_AUTH_CLIENT_SECRET: 'env-secret',
      NINJA_AUTH_KEY: 'env-key',
    });
    expect(config.upstream.tokenUrl).toBe(TOKEN_URL);
    expect(config.upstream.revokeUrl).toBe('https://idp.example.com/oauth/revoke');
    expect(config.client).toMatchObject({ id: 'env-client', secret: 'env-secret', auth: 'client_secret_post' });
    expect(config.authKeyDigest).toBeInstanceOf(Buffer);
  });

  it('options override the environment; an empty variable counts as unset', () => {
    const config = parseOptions({ upstream: { tokenUrl: TOKEN_URL }, clientId: 'opt' }, { NINJA_AUTH_TOKEN_URL: 'https://other.example/t', NINJA_AUTH_CLIENT_ID: 'env', NINJA_AUTH_REVOKE_URL: '' });
    expect(config.upstream.tokenUrl).toBe(TOKEN_URL);
    expect(config.client.id).toBe('opt');
    expect(config.upstream.revokeUrl).toBeUndefined();
  });

  it('defaults', () => {
    const config = parseOptions({ upstream: { tokenUrl: TOKEN_URL } }, noEnv);
    expect(config).toMatchObject({ prefix: '/auth', timeoutMs: 10_000, maxBodyBytes: 16_384, awaitHooks: false, hookTimeoutMs: 5_000 });
    expect(config.client.auth).toBe('none');
    expect([...config.grantTypes]).toEqual(['password', 'authorization_code', 'client_credentials', 'refresh_token']);
  });
});

describe('misconfiguration throws at once', () => {
  it.each([
    [{ upstream: { tokenUrl: TOKEN_URL }, timeoutMS: 5 }, 'timeoutMS', 'did you mean "timeoutMs"'],
    [{ upstream: { tokenURL: TOKEN_URL } }, 'upstream.tokenURL', 'did you mean "upstream.tokenUrl"'],
    [{ upstream: { tokenUrl: TOKEN_URL }, hooks: { onRotate: () => undefined } }, 'hooks.onRotate', 'did you mean "hooks.onRotation"'],
    [{ upstream: { tokenUrl: TOKEN_URL }, zzz: 1 }, 'zzz', 'known options:'],
  ])('an unknown option is reported as a typo: %j', (options, option, hint) => {
    const error = configError(options);
    expect(error.option).toBe(option);
    expect(error.message).toContain('a typo?');
    expect(error.message).toContain(hint);
  });

  it.each([
    ['http://idp.example.com/token', 'must use https:'],
    ['not a url', 'must be an absolute URL'],
    ['ftp://idp.example.com/token', 'must use https:'],
    ['https://user:pass@idp.example.com/token', 'must not carry credentials'],
  ])('a bad token URL %s', (tokenUrl, problem) => {
    const error = configError({ upstream: { tokenUrl } });
    expect(error.message).toContain(problem);
    expect(error.message).toContain('NINJA_AUTH_TOKEN_URL');
    expect(error.message).not.toContain('pass@');
  });

  it('the https rule applies to URLs from the environment and to revokeUrl', () => {
    expect(configError({}, { NINJA_AUTH_TOKEN_URL: 'http://idp.example.com/t' }).envVar).toBe('NINJA_AUTH_TOKEN_URL');
    expect(configError({ upstream: { tokenUrl: TOKEN_URL, revokeUrl: 'http://idp.example.com/r' } }).option).toBe('upstream.revokeUrl');
  });

  it.each(['http://localhost:8080/t', 'http://127.0.0.1/t', 'http://127.8.9.10:1/t', 'http://[::1]:3000/t'])('http is fine on loopback: %s', (tokenUrl) => {
    expect(parseOptions({ upstream: { tokenUrl } }, noEnv).upstream.tokenUrl).toBe(new URL(tokenUrl).href);
  });

  it('allowInsecureUpstream lifts the https rule', () => {
    expect(parseOptions({ upstream: { tokenUrl: 'http://idp.internal/t' }, allowInsecureUpstream: true }, noEnv).upstream.tokenUrl).toBe('http://idp.internal/t');
  });

  it.each([
    [{ clientAuth: 'private_key_jwt_typo' }, 'clientAuth'],
    [{ clientId: 'c', clientAuth: 'private_key_jwt' }, 'clientAssertionKey'],
    [{ clientSecret: 'shh-very-secret' }, 'clientId'],
    [{ clientId: 'c', clientAuth: 'client_secret_basic' }, 'clientSecret'],
    [{ clientId: 'c', clientSecret: 'shh-very-secret', clientAuth: 'none' }, 'clientAuth'],
    [{ timeoutMs: '100' }, 'timeoutMs'],
    [{ maxBodyBytes: -1 }, 'maxBodyBytes'],
    [{ hookTimeoutMs: 1.5 }, 'hookTimeoutMs'],
    [{ awaitHooks: 'yes' }, 'awaitHooks'],
    [{ grantTypes: [] }, 'grantTypes'],
    [{ grantTypes: 'password' }, 'grantTypes'],
    [{ extraParams: { audience: 1 } }, 'extraParams.audience'],
    [{ extraParams: { client_secret: 'x' } }, 'extraParams.client_secret'],
    [{ allowUsernames: 'alice' }, 'allowUsernames'],
    [{ hooks: { onRotation: 'log' } }, 'hooks.onRotation'],
    [{ httpClient: {} }, 'httpClient'],
    [{ prefix: 'auth' }, 'prefix'],
    [{ clientId: 42 }, 'clientId'],
  ])('%j names %s', (extra, option) => {
    const error = configError({ upstream: { tokenUrl: TOKEN_URL }, ...extra });
    expect(error.option).toBe(option);
    expect(error.message).toContain(`"${option}"`);
    expect(error.message).not.toContain('shh-very-secret');
  });

  it('an option read from the environment is named with its variable', () => {
    const error = configError({ upstream: { tokenUrl: TOKEN_URL } }, { NINJA_AUTH_CLIENT_SECRET: 'from-env-secret' });
    expect(error.message).toContain('NINJA_AUTH_CLIENT_ID');
    expect(error.message).not.toContain('from-env-secret');
  });

  it('upstream.issuer alone is enough; the https rule applies to it, and it is kept as written', () => {
    const config = parseOptions(undefined, { NINJA_AUTH_ISSUER: 'https://tenant.example.com/', NINJA_AUTH_CLIENT_ID: 'c', NINJA_AUTH_CLIENT_SECRET: 's' });
    expect(config.upstream).toMatchObject({ issuer: 'https://tenant.example.com/', tokenUrl: undefined });
    expect(config.client.auth).toBeUndefined();
    const insecure = configError({ upstream: { issuer: 'http://idp.example.com' } });
    expect(insecure).toMatchObject({ option: 'upstream.issuer', envVar: 'NINJA_AUTH_ISSUER' });
    expect(configError({ upstream: { issuer: 'https://idp.example.com/?tenant=1' } }).option).toBe('upstream.issuer');
  });

  it('the router factory throws too, at the call', async () => {
    const { ninjaAuth } = await import('../../src/index.js');
    expect(() => ninjaAuth({ upstream: { tokenUrl: 'http://idp.example.com' } })).toThrow(NinjaAuthConfigError);
  });
});

describe('prefix', () => {
  it.each([
    ['/auth/', '/auth'],
    ['', ''],
    ['/', ''],
    ['/api/oauth', '/api/oauth'],
  ])('%j → %j', (prefix, expected) => {
    expect(parseOptions({ upstream: { tokenUrl: TOKEN_URL }, prefix }, noEnv).prefix).toBe(expected);
  });
});
