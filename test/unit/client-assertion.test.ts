import { createPublicKey, createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { clientAuthenticator } from '../../src/client-auth.js';
import { assertionSigner, readAssertionKey, secretAssertionKey } from '../../src/client-assertion.js';
import { NinjaAuthConfigError, type NinjaAuthOptions } from '../../src/index.js';
import { parseOptions } from '../../src/options.js';
import { testPki } from '../helpers/certs.js';

const TOKEN_URL = 'https://idp.example.com/oauth/token';
const noEnv = {};
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const ed = generateKeyPairSync('ed25519').privateKey;
const pem = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }) as string;

function configError(options: NinjaAuthOptions, env: Record<string, string> = {}): NinjaAuthConfigError {
  try {
    parseOptions({ upstream: { tokenUrl: TOKEN_URL }, ...options }, env);
  } catch (error) {
    expect(error).toBeInstanceOf(NinjaAuthConfigError);
    return error as NinjaAuthConfigError;
  }
  throw new Error('parseOptions did not throw');
}

afterEach(() => {
  vi.useRealTimers();
});

describe('assertions (RFC 7523 §3)', () => {
  it('iss = sub = client id, aud = the endpoint, exp 60 s after iat, a fresh jti, verifiable with the public key', async () => {
    vi.useFakeTimers({ now: new Date('2026-03-01T12:00:00Z'), toFake: ['Date'] });
    const sign = assertionSigner(readAssertionKey(ec, undefined, 'kid-1'), 'client-7');
    const first = await sign(TOKEN_URL);
    const second = await sign('https://idp.example.com/oauth/revoke');
    await compactVerify(first, createPublicKey(ec));
    expect(decodeProtectedHeader(first)).toEqual({ alg: 'ES256', kid: 'kid-1' });
    const claims = decodeJwt(first);
    expect(claims).toMatchObject({ iss: 'client-7', sub: 'client-7', aud: TOKEN_URL, iat: 1_772_366_400, exp: 1_772_366_460 });
    expect(decodeJwt(second).aud).toBe('https://idp.example.com/oauth/revoke');
    expect(decodeJwt(second).jti).not.toBe(claims.jti);
  });

  it('no two of a thousand assertions share a jti', async () => {
    const sign = assertionSigner(secretAssertionKey('a-secret-of-some-length-0123456789', undefined, undefined), 'c');
    const jtis = new Set<unknown>();
    for (let i = 0; i < 1000; i++) jtis.add(decodeJwt(await sign(TOKEN_URL)).jti);
    expect(jtis.size).toBe(1000);
  });

  it('client_secret_jwt is HMAC over the secret’s bytes', async () => {
    const secret = 'a-secret-of-some-length-0123456789';
    const jwt = await assertionSigner(secretAssertionKey(secret, 'HS512', undefined), 'c')(TOKEN_URL);
    expect(decodeProtectedHeader(jwt)).toEqual({ alg: 'HS512' });
    await compactVerify(jwt, new TextEncoder().encode(secret));
  });

  it.each([
    ['RSA', rsa, 'RS256'],
    ['EC P-384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, 'ES384'],
    ['EC P-521', generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey, 'ES512'],
    ['Ed25519', ed, 'EdDSA'],
  ])('the algorithm follows the key: %s → %s', (_name, key, alg) => {
    expect(readAssertionKey(key, undefined, undefined).alg).toBe(alg);
    expect(readAssertionKey(pem(key), undefined, undefined).alg).toBe(alg);
    expect(readAssertionKey(key.export({ format: 'jwk' }), undefined, undefined).alg).toBe(alg);
  });

  it('a JWK’s kid is the default kid; the option wins; PKCS#1 and SEC1 PEMs are read too', () => {
    expect(readAssertionKey({ ...ec.export({ format: 'jwk' }), kid: 'from-jwk' }, undefined, undefined).kid).toBe('from-jwk');
    expect(readAssertionKey({ ...ec.export({ format: 'jwk' }), kid: 'from-jwk' }, undefined, 'option').kid).toBe('option');
    expect(readAssertionKey(JSON.stringify({ ...ed.export({ format: 'jwk' }), kid: 'json' }), undefined, undefined).kid).toBe('json');
    expect(readAssertionKey(rsa.export({ type: 'pkcs1', format: 'pem' }) as string, 'PS256', undefined).alg).toBe('PS256');
    expect(readAssertionKey(ec.export({ type: 'sec1', format: 'pem' }) as string, undefined, undefined).kid).toBeUndefined();
  });
});

describe('the authenticator', () => {
  const callerForm = () => new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'rt', client_id: 'caller', client_secret: 'caller-secret', client_assertion: 'caller.jwt.x', client_assertion_type: 'urn:caller' });

  it.each(['client_secret_post', 'client_secret_basic', 'client_secret_jwt', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'] as const)(
    '%s drops what the caller sent as client credentials',
    async (method) => {
      const tls = method.includes('tls') ? { tls: { cert: testPki().client.cert, key: testPki().client.key } } : {};
      const key = method === 'private_key_jwt' ? { clientAssertionKey: ec } : {};
      const secret = method.startsWith('client_secret') ? { clientSecret: 'router-secret' } : {};
      const config = parseOptions({ upstream: { tokenUrl: TOKEN_URL }, clientId: 'router', clientAuth: method, ...tls, ...key, ...secret }, noEnv);
      const call = await clientAuthenticator(config.client, method)(TOKEN_URL, callerForm());
      expect(call.form.get('client_id')).toBe(method === 'client_secret_basic' ? null : 'router');
      expect(call.form.get('client_secret')).toBe(method === 'client_secret_post' ? 'router-secret' : null);
      expect(call.form.get('client_assertion')).not.toBe('caller.jwt.x');
      expect(call.form.get('client_assertion_type')).toBe(method.endsWith('_jwt') ? 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' : null);
      expect(call.form.get('refresh_token')).toBe('rt');
    },
  );
});

describe('defaults of clientAuth', () => {
  const { client: cert } = testPki();
  it.each([
    [{ clientAssertionKey: ec, clientSecret: 's3cret', tls: { cert: cert.cert, key: cert.key } }, 'private_key_jwt'],
    [{ clientSecret: 's3cret', tls: { cert: cert.cert, key: cert.key } }, 'tls_client_auth'],
    [{ clientSecret: 's3cret' }, 'client_secret_post'],
    [{}, 'none'],
  ])('%# → %s', (extra, method) => {
    expect(parseOptions({ upstream: { tokenUrl: TOKEN_URL }, clientId: 'c', ...extra }, noEnv).client.auth).toBe(method);
  });

  it('with an issuer and no clientAuth, the metadata decides', () => {
    expect(parseOptions({ upstream: { issuer: 'https://idp.example.com' }, clientId: 'c', clientAssertionKey: ec }, noEnv).client.auth).toBeUndefined();
  });

  it('the key and the certificate can come from the environment, PEM or JWK JSON, with \\n escapes', () => {
    const { client } = testPki();
    const config = parseOptions(undefined, {
      NINJA_AUTH_TOKEN_URL: TOKEN_URL,
      NINJA_AUTH_CLIENT_ID: 'env-client',
      NINJA_AUTH_CLIENT_ASSERTION_KEY: pem(ed).replaceAll('\n', '\\n'),
      NINJA_AUTH_TLS_CERT: client.cert,
      NINJA_AUTH_TLS_KEY: client.key.replaceAll('\n', '\\n'),
      NINJA_AUTH_TLS_CA: testPki().ca.cert,
    });
    expect(config.client.auth).toBe('private_key_jwt');
    expect(config.client.assertionKey?.alg).toBe('EdDSA');
    expect(config.tls?.ca?.length).toBeGreaterThan(1);
    const jwk = parseOptions(undefined, { NINJA_AUTH_TOKEN_URL: TOKEN_URL, NINJA_AUTH_CLIENT_ID: 'c', NINJA_AUTH_CLIENT_ASSERTION_KEY: JSON.stringify({ ...rsa.export({ format: 'jwk' }), kid: 'k' }) });
    expect(jwk.client.assertionKey).toMatchObject({ alg: 'RS256', kid: 'k' });
  });
});

describe('misconfiguration fails at ninjaAuth(), naming the option and never the key', () => {
  const { client, stranger, encrypted, ca } = testPki();
  const weakRsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey;
  const rsaPem = pem(rsa);
  const ecJwk = ec.export({ format: 'jwk' });

  it.each<[string, string, NinjaAuthOptions]>([
    ['a public key (KeyObject)', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: createPublicKey(rsa) }],
    ['a public key (PEM)', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: createPublicKey(ec).export({ type: 'spki', format: 'pem' }) as string }],
    ['a public JWK', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: createPublicKey(ec).export({ format: 'jwk' }) }],
    ['a certificate instead of a key', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: client.cert }],
    ['a secret KeyObject', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: createSecretKey(Buffer.alloc(32, 1)) }],
    ['a symmetric JWK', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: { kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ' } }],
    ['an encrypted PEM', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: encrypted.key }],
    ['not a key at all', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: 'just some text' }],
    ['a number', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: 42 as never }],
    ['an RSA key under 2048 bits', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: weakRsa }],
    ['an EC key on secp256k1', 'clientAssertionKey', { clientId: 'c', clientAssertionKey: secp256k1 }],
    ['ES256 for an RSA key', 'clientAssertionAlg', { clientId: 'c', clientAssertionKey: rsaPem, clientAssertionAlg: 'ES256' }],
    ['ES384 for a P-256 key', 'clientAssertionAlg', { clientId: 'c', clientAssertionKey: ecJwk, clientAssertionAlg: 'ES384' }],
    ['HS256 for a private key', 'clientAssertionAlg', { clientId: 'c', clientAssertionKey: ed, clientAssertionAlg: 'HS256' }],
    ['RS256 for client_secret_jwt', 'clientAssertionAlg', { clientId: 'c', clientSecret: 'shh-very-secret', clientAuth: 'client_secret_jwt', clientAssertionAlg: 'RS256' }],
    ['an algorithm without anything to sign', 'clientAssertionAlg', { clientId: 'c', clientSecret: 'shh-very-secret', clientAssertionAlg: 'HS256' }],
    ['a kid without anything to sign', 'clientAssertionKid', { clientId: 'c', clientAssertionKid: 'k' }],
    ['private_key_jwt without a key', 'clientAssertionKey', { clientId: 'c', clientAuth: 'private_key_jwt' }],
    ['client_secret_jwt without a secret', 'clientSecret', { clientId: 'c', clientAuth: 'client_secret_jwt' }],
    ['tls_client_auth without tls', 'tls', { clientId: 'c', clientAuth: 'tls_client_auth' }],
    ['self_signed_tls_client_auth without tls', 'tls', { clientId: 'c', clientAuth: 'self_signed_tls_client_auth' }],
    ['a key without a client id', 'clientId', { clientAssertionKey: ec }],
    ['a certificate without a client id', 'clientId', { tls: { cert: client.cert, key: client.key } }],
    ['none with a key', 'clientAuth', { clientId: 'c', clientAuth: 'none', clientAssertionKey: ec }],
    ['tls without key', 'tls.key', { clientId: 'c', tls: { cert: client.cert } as never }],
    ['tls without cert', 'tls.cert', { clientId: 'c', tls: { key: client.key } as never }],
    ['tls with a key of another certificate', 'tls.key', { clientId: 'c', tls: { cert: client.cert, key: stranger.key } }],
    ['tls with an encrypted key and no passphrase', 'tls.key', { clientId: 'c', tls: { cert: encrypted.cert, key: encrypted.key } }],
    ['tls with a wrong passphrase', 'tls.key', { clientId: 'c', tls: { cert: encrypted.cert, key: encrypted.key, passphrase: 'wrong' } }],
    ['tls with a ca that is not PEM', 'tls.ca', { clientId: 'c', tls: { cert: client.cert, key: client.key, ca: 'not a certificate' } }],
    ['tls with an unknown field', 'tls.certificate', { clientId: 'c', tls: { cert: client.cert, key: client.key, certificate: ca.cert } as never }],
    ['tls beside a custom httpClient', 'tls', { clientId: 'c', tls: { cert: client.cert, key: client.key }, httpClient: Object.assign(() => undefined, { request: () => undefined }) as never }],
  ])('%s → %s', (_name, option, options) => {
    const error = configError(options);
    expect(error.option).toBe(option);
    expect(error.message).toContain(`"${option}"`);
    for (const secret of [rsaPem.split('\n')[1]!, ecJwk.d!, client.key.split('\n')[1]!, stranger.key.split('\n')[1]!, encrypted.key.split('\n')[1]!, 'shh-very-secret']) {
      expect(error.message).not.toContain(secret);
    }
  });

  it('a bad key from the environment is named with its variable', () => {
    const error = configError({ clientId: 'c' }, { NINJA_AUTH_CLIENT_ASSERTION_KEY: createPublicKey(ec).export({ type: 'spki', format: 'pem' }) as string });
    expect(error.envVar).toBe('NINJA_AUTH_CLIENT_ASSERTION_KEY');
    expect(error.message).toContain('NINJA_AUTH_CLIENT_ASSERTION_KEY');
  });

  it('a certificate from the environment beside httpClient, and a credential from it under clientAuth none, name their variables', () => {
    const httpClient = Object.assign(() => undefined, { request: () => undefined }) as never;
    const tlsError = configError({ clientId: 'c', httpClient }, { NINJA_AUTH_TLS_CERT: client.cert, NINJA_AUTH_TLS_KEY: client.key });
    expect(tlsError.option).toBe('tls');
    expect(tlsError.message).toContain('NINJA_AUTH_TLS_CERT');
    const noneError = configError({ clientId: 'c', clientAuth: 'none' }, { NINJA_AUTH_CLIENT_SECRET: 'shh-very-secret' });
    expect(noneError.option).toBe('clientAuth');
    expect(noneError.message).toContain('NINJA_AUTH_CLIENT_SECRET');
    expect(noneError.message).not.toContain('shh-very-secret');
  });

  it('NINJA_AUTH_TLS_CA alone is a tls without cert and key', () => {
    const error = configError({ clientId: 'c' }, { NINJA_AUTH_TLS_CA: ca.cert });
    expect(error.option).toBe('tls.cert');
    expect(error.envVar).toBe('NINJA_AUTH_TLS_CERT');
  });

  it('an mTLS method with the app’s own httpClient needs no tls: its agent carries the certificate', () => {
    const httpClient = Object.assign(() => undefined, { request: () => undefined }) as never;
    expect(parseOptions({ upstream: { tokenUrl: TOKEN_URL }, clientId: 'c', clientAuth: 'tls_client_auth', httpClient }, noEnv).client.auth).toBe('tls_client_auth');
  });
});
