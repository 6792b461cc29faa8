import { generateKeyPairSync } from 'node:crypto';
import { format } from 'node:util';
import createDebug from 'debug';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NinjaAuthOptions } from '../../src/index.js';
import { testPki } from '../helpers/certs.js';
import { hostApp } from '../helpers/host.js';
import { type RawUpstream, rawUpstream, type SeenRequest } from '../helpers/servers.js';

// How discovery picks and checks the client authentication, against a bare server serving the metadata the
// test wants (the interop file runs each method against a provider that enforces it).
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const { client: certificate } = testPki();
const CREDENTIALS = {
  key: { clientAssertionKey: key },
  certificate: { tls: { cert: certificate.cert, key: certificate.key } },
  secret: { clientSecret: 'disc-secret' },
} satisfies Record<string, NinjaAuthOptions>;

const discoveryLines: string[] = [];
beforeAll(() => {
  createDebug.enable('ninja-auth:discovery');
  createDebug.log = (...args: unknown[]) => void discoveryLines.push(format(...args));
});
afterAll(() => {
  createDebug.disable();
});

let server: RawUpstream | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function issuerWith(extra: (origin: string) => Record<string, unknown>): Promise<string> {
  let origin = '';
  server = await rawUpstream((res, seen: SeenRequest) => {
    if (seen.method === 'GET' && seen.url === '/.well-known/openid-configuration') {
      const metadata = { issuer: origin, token_endpoint: `${origin}/oauth/token`, revocation_endpoint: `${origin}/oauth/revoke`, ...extra(origin) };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(metadata));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"at","refresh_token":"rt-next"}');
  });
  origin = server.origin;
  return origin;
}

const refresh = (options: NinjaAuthOptions) => request(hostApp({ clientId: 'disc-client', ...options })).post('/auth/refresh_token').set('authorization', 'Bearer rt-1');
const tokenCalls = (): SeenRequest[] => server!.requests.filter((r) => r.method === 'POST');

function methodOf(seen: SeenRequest): string {
  if (seen.form.get('client_assertion') !== null) return 'private_key_jwt';
  if (seen.headers['authorization']?.startsWith('Basic ')) return 'client_secret_basic';
  if (seen.form.get('client_secret') !== null) return 'client_secret_post';
  return 'client_id only';
}

describe('without clientAuth, the strongest configured method the metadata lists', () => {
  it.each<[string, Array<keyof typeof CREDENTIALS>, string[] | undefined, string]>([
    ['key and secret, both listed', ['key', 'secret'], ['client_secret_basic', 'private_key_jwt'], 'private_key_jwt'],
    ['key and secret, only the secret listed', ['key', 'secret'], ['client_secret_post', 'client_secret_basic'], 'client_secret_post'],
    ['certificate and secret, the certificate listed', ['certificate', 'secret'], ['client_secret_basic', 'tls_client_auth'], 'client_id only'],
    ['certificate and secret, only basic listed', ['certificate', 'secret'], ['client_secret_basic', 'private_key_jwt'], 'client_secret_basic'],
    ['key, no list in the metadata', ['key'], undefined, 'private_key_jwt'],
    ['key and certificate, only self-signed mTLS listed', ['key', 'certificate'], ['self_signed_tls_client_auth'], 'client_id only'],
  ])('%s', async (_name, configured, listed, expected) => {
    const issuer = await issuerWith(() => (listed === undefined ? {} : { token_endpoint_auth_methods_supported: listed }));
    const options = Object.assign({ upstream: { issuer } }, ...configured.map((c) => CREDENTIALS[c])) as NinjaAuthOptions;
    expect((await refresh(options)).status).toBe(200);
    expect(methodOf(tokenCalls()[0]!)).toBe(expected);
  });

  it('nothing configured is listed: 502 upstream_unavailable, no token request, the reason in the discovery log', async () => {
    const issuer = await issuerWith(() => ({ token_endpoint_auth_methods_supported: ['client_secret_basic'] }));
    const answer = await refresh({ upstream: { issuer }, ...CREDENTIALS.key });
    expect(answer.status).toBe(502);
    expect(answer.body.error).toBe('upstream_unavailable');
    expect(tokenCalls()).toHaveLength(0);
    expect(discoveryLines.at(-1)).toContain('none of the configured client authentication methods (private_key_jwt) is in the metadata');
  });
});

describe('an explicit clientAuth must be listed, when there is a list', () => {
  it('not listed: 502, no token request, the reason in the discovery log', async () => {
    const issuer = await issuerWith(() => ({ token_endpoint_auth_methods_supported: ['client_secret_basic', 'private_key_jwt'] }));
    const answer = await refresh({ upstream: { issuer }, ...CREDENTIALS.secret, clientAuth: 'client_secret_jwt' });
    expect(answer.status).toBe(502);
    expect(tokenCalls()).toHaveLength(0);
    expect(discoveryLines.at(-1)).toContain(`clientAuth "client_secret_jwt" is not in the metadata's token_endpoint_auth_methods_supported`);
    expect(discoveryLines.at(-1)).not.toContain('disc-secret');
  });

  it('no list: used as configured', async () => {
    const issuer = await issuerWith(() => ({}));
    expect((await refresh({ upstream: { issuer }, ...CREDENTIALS.secret, clientAuth: 'client_secret_jwt' })).status).toBe(200);
    expect(tokenCalls()[0]!.form.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  });
});

describe('mtls_endpoint_aliases', () => {
  const withAliases = (origin: string) => ({ mtls_endpoint_aliases: { token_endpoint: `${origin}/mtls/token`, revocation_endpoint: `${origin}/mtls/revoke` } });

  it('are used for mTLS, for the token and the revocation endpoint', async () => {
    const issuer = await issuerWith(withAliases);
    const host = hostApp({ upstream: { issuer }, clientId: 'disc-client', ...CREDENTIALS.certificate });
    expect((await request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt-1')).status).toBe(200);
    expect((await request(host).post('/auth/revoke_token').type('form').send({ token: 't' })).status).toBe(200);
    expect(tokenCalls().map((r) => r.url)).toEqual(['/mtls/token', '/mtls/revoke']);
  });

  it('are not used by the other methods: the assertion names the endpoint called', async () => {
    const issuer = await issuerWith(withAliases);
    await refresh({ upstream: { issuer }, ...CREDENTIALS.key });
    const [call] = tokenCalls();
    expect(call!.url).toBe('/oauth/token');
    const payload = JSON.parse(Buffer.from(call!.form.get('client_assertion')!.split('.')[1]!, 'base64url').toString());
    expect(payload.aud).toBe(`${server!.origin}/oauth/token`);
  });

  it('a configured tokenUrl wins over the alias', async () => {
    const issuer = await issuerWith(withAliases);
    await refresh({ upstream: { issuer, tokenUrl: `${server!.origin}/mine` }, ...CREDENTIALS.certificate });
    expect(tokenCalls()[0]!.url).toBe('/mine');
  });

  it('an alias that breaks the https rule fails discovery', async () => {
    const issuer = await issuerWith(() => ({ mtls_endpoint_aliases: { token_endpoint: 'http://idp.example.com/mtls/token' } }));
    expect((await refresh({ upstream: { issuer }, ...CREDENTIALS.certificate })).status).toBe(502);
    expect(tokenCalls()).toHaveLength(0);
    expect(discoveryLines.at(-1)).toContain('mtls_endpoint_aliases.token_endpoint must use https:');
  });
});
