import type { ServerResponse } from 'node:http';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { NinjaAuthOptions } from '../../src/index.js';
import { metadataUrls } from '../../src/upstream-site.js';
import { hostApp } from '../helpers/host.js';
import { type RawUpstream, rawUpstream, type SeenRequest } from '../helpers/servers.js';

// Discovery's own rules, against a bare server that serves whatever metadata the test wants.
let server: RawUpstream | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

type Metadata = (origin: string) => Record<string, unknown> | undefined;

/** Serves `metadata` at the OIDC path (or only at the RFC 8414 path), and a token endpoint that says who called. */
async function issuerServer(metadata: Metadata, options: { rfc8414Only?: boolean; issuerPath?: string } = {}) {
  let origin = '';
  const path = options.issuerPath ?? '';
  server = await rawUpstream((res: ServerResponse, seen: SeenRequest) => {
    const oidcPath = `${path}/.well-known/openid-configuration`;
    const rfcPath = `/.well-known/oauth-authorization-server${path}`;
    if (seen.method === 'GET' && ((seen.url === oidcPath && !options.rfc8414Only) || seen.url === rfcPath)) {
      const body = metadata(origin);
      if (body === undefined) {
        res.writeHead(503).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    if (seen.method === 'GET') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'at', refresh_token: 'rt-next', path: seen.url }));
  });
  origin = server.origin;
  return { issuer: `${server.origin}${path}`, metadataCalls: () => server!.requests.filter((r) => r.method === 'GET').length };
}

const standard: Metadata = (origin) => ({ issuer: origin, token_endpoint: `${origin}/oauth/token`, revocation_endpoint: `${origin}/oauth/revoke` });

function app(issuer: string, extra: NinjaAuthOptions = {}) {
  return hostApp({ upstream: { issuer }, clientId: 'disc-client', clientSecret: 'disc-secret', ...extra });
}
const refresh = (host: ReturnType<typeof app>) => request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt-1');
const tokenCalls = () => server!.requests.filter((r) => r.method === 'POST');

describe('discovery', () => {
  it('reads token and revocation endpoints from /.well-known/openid-configuration', async () => {
    const { issuer } = await issuerServer(standard);
    const host = app(issuer);
    expect((await refresh(host)).body.path).toBe('/oauth/token');
    expect((await request(host).post('/auth/revoke_token').type('form').send({ token: 't' })).body.path).toBe('/oauth/revoke');
  });

  it('falls back to RFC 8414, with the well-known part before the issuer’s path', async () => {
    const { issuer } = await issuerServer((origin) => ({ ...standard(origin), issuer: `${origin}/tenant-a` }), { rfc8414Only: true, issuerPath: '/tenant-a' });
    expect((await refresh(app(issuer))).status).toBe(200);
    expect(server!.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /tenant-a/.well-known/openid-configuration',
      'GET /.well-known/oauth-authorization-server/tenant-a',
      'POST /oauth/token',
    ]);
    expect(metadataUrls('https://idp.example.com/')).toEqual(['https://idp.example.com/.well-known/openid-configuration', 'https://idp.example.com/.well-known/oauth-authorization-server']);
  });

  it('the default client asks for JSON on both requests, and declares a form body only on the POST', async () => {
    const { issuer } = await issuerServer(standard);
    expect((await refresh(app(issuer, { clientAuth: 'client_secret_basic' }))).status).toBe(200);
    const [metadata, token] = server!.requests;
    for (const seen of [metadata!, token!]) {
      expect(seen.headers).toMatchObject({ accept: 'application/json', 'accept-encoding': 'identity', 'user-agent': 'ninja-auth' });
    }
    expect(metadata!.headers['content-type']).toBeUndefined();
    expect(metadata!.headers['authorization']).toBeUndefined();
    expect(token!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(token!.headers['authorization']).toMatch(/^Basic /);
  });

  it('concurrent first requests share one metadata fetch; later ones use the cache', async () => {
    const { issuer, metadataCalls } = await issuerServer(standard);
    const host = app(issuer);
    const replies = await Promise.all(Array.from({ length: 10 }, () => refresh(host)));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    await refresh(host);
    expect(metadataCalls()).toBe(1);
  });

  it.each([
    ['another issuer', (origin: string) => ({ ...standard(origin), issuer: 'https://evil.example.com' })],
    ['a token endpoint that is not https off loopback', (origin: string) => ({ ...standard(origin), token_endpoint: 'http://idp.example.com/token' })],
    ['no token endpoint', (origin: string) => ({ issuer: origin })],
    ['no metadata at all (the server fails)', () => undefined],
  ])('metadata with %s → 502 upstream_unavailable, and no token request', async (_what, metadata) => {
    const { issuer } = await issuerServer(metadata);
    const res = await refresh(app(issuer));
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('upstream_unavailable');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(JSON.stringify(res.body)).not.toContain('127.0.0.1');
    expect(tokenCalls()).toHaveLength(0);
  });

  it('a failed discovery is retried on a later request, after a backoff that doubles', async () => {
    // Only the clock is faked: the servers and sockets keep their real timers.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      let up = false;
      const { issuer, metadataCalls } = await issuerServer((origin) => (up ? standard(origin) : undefined));
      const host = app(issuer);
      expect((await refresh(host)).status).toBe(502);
      expect(metadataCalls()).toBe(2);
      vi.advanceTimersByTime(999);
      expect((await refresh(host)).status).toBe(502);
      expect(metadataCalls()).toBe(2);
      vi.advanceTimersByTime(1);
      expect((await refresh(host)).status).toBe(502);
      expect(metadataCalls()).toBe(4);
      up = true;
      vi.advanceTimersByTime(1999);
      expect((await refresh(host)).status).toBe(502);
      expect(metadataCalls()).toBe(4);
      vi.advanceTimersByTime(1);
      expect((await refresh(host)).status).toBe(200);
      expect(metadataCalls()).toBe(5);
    } finally {
      vi.useRealTimers();
    }
  });

  it('without revocation_endpoint, revoke_token answers 501', async () => {
    const { issuer } = await issuerServer((origin) => ({ issuer: origin, token_endpoint: `${origin}/oauth/token` }));
    const res = await request(app(issuer)).post('/auth/revoke_token').type('form').send({ token: 't' });
    expect(res.status).toBe(501);
    expect(res.body.error).toBe('unsupported_operation');
  });

  it('configured endpoints win over discovered ones', async () => {
    const { issuer } = await issuerServer(standard);
    const host = app(issuer, { upstream: { issuer, tokenUrl: `${server!.origin}/custom/token` } });
    expect((await refresh(host)).body.path).toBe('/custom/token');
  });
});

describe('client authentication picked from token_endpoint_auth_methods_supported', () => {
  it.each([
    [['client_secret_basic', 'private_key_jwt'], 'basic'],
    [['client_secret_post', 'client_secret_basic'], 'post'],
    [undefined, 'basic'],
  ])('%j → %s', async (methods, expected) => {
    const { issuer } = await issuerServer((origin) => ({ ...standard(origin), ...(methods ? { token_endpoint_auth_methods_supported: methods } : {}) }));
    await refresh(app(issuer));
    const [call] = tokenCalls();
    const used = call!.headers['authorization']?.startsWith('Basic ') ? 'basic' : call!.form.get('client_secret') === 'disc-secret' ? 'post' : 'none';
    expect(used).toBe(expected);
  });

  it('an explicit clientAuth wins over the choice, when the metadata lists it', async () => {
    const { issuer } = await issuerServer((origin) => ({ ...standard(origin), token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'] }));
    await refresh(app(issuer, { clientAuth: 'client_secret_basic' }));
    expect(tokenCalls()[0]!.headers['authorization']).toMatch(/^Basic /);
  });
});
