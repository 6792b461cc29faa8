import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { asBytes, hostApp } from '../helpers/host.js';
import { fixedReply, type RawUpstream, rawUpstream } from '../helpers/servers.js';

// What no provider library lets us choose exactly: odd formatting, odd statuses and odd headers.
let upstream: RawUpstream | undefined;
afterEach(async () => {
  await upstream?.close();
  upstream = undefined;
});

async function relay(status: number, headers: Record<string, string | string[]>, body: string | Buffer) {
  upstream = await rawUpstream(fixedReply(status, headers, body));
  return request(hostApp({ upstream: { tokenUrl: upstream.url }, clientId: 'c', clientSecret: 's3cret' }))
    .post('/auth/refresh_token')
    .set('authorization', 'Bearer rt-old')
    .buffer(true)
    .parse(asBytes);
}

describe('verbatim passthrough', () => {
  it('odd-but-valid JSON formatting arrives byte for byte, never re-serialised', async () => {
    const odd = '{ "refresh_token" : "rt-new",\n\t"access_token":"at\\u0041",  "expires_in": 3.6e3 , "scope" : "a b"  }\n\n';
    const res = await relay(200, { 'content-type': 'application/json;charset=UTF-8' }, odd);
    expect(res.status).toBe(200);
    expect(res.body.equals(Buffer.from(odd))).toBe(true);
    expect(res.headers['content-type']).toBe('application/json;charset=UTF-8');
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(odd)));
  });

  it('a rotated refresh token reaches the caller exactly as issued, whatever the caller sent', async () => {
    const body = JSON.stringify({ access_token: 'at-2', refresh_token: 'rt-new', token_type: 'Bearer' });
    const res = await relay(200, { 'content-type': 'application/json' }, body);
    expect(JSON.parse(res.body.toString()).refresh_token).toBe('rt-new');
    expect(upstream!.requests[0]!.form.get('refresh_token')).toBe('rt-old');
  });

  it('non-JSON bodies pass through too, with their content type', async () => {
    const res = await relay(200, { 'content-type': 'text/plain' }, 'access_token=at&token_type=bearer');
    expect(res.body.toString()).toBe('access_token=at&token_type=bearer');
    expect(res.headers['content-type']).toBe('text/plain');
  });

  it('an upstream 500 with an HTML page is passed through, not replaced', async () => {
    const page = '<html><body>Internal error</body></html>';
    const res = await relay(500, { 'content-type': 'text/html' }, page);
    expect(res.status).toBe(500);
    expect(res.body.toString()).toBe(page);
  });

  it('429 keeps Retry-After', async () => {
    const res = await relay(429, { 'content-type': 'application/json', 'retry-after': '17' }, '{"error":"slow_down"}');
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBe('17');
    expect(res.body.toString()).toBe('{"error":"slow_down"}');
  });

  it('401 keeps WWW-Authenticate', async () => {
    const challenge = 'Basic realm="idp", error="invalid_client"';
    const res = await relay(401, { 'content-type': 'application/json', 'www-authenticate': challenge }, '{"error":"invalid_client"}');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(challenge);
  });

  it('Set-Cookie and hop-by-hop headers are dropped; other end-to-end headers kept', async () => {
    const res = await relay(
      200,
      {
        'content-type': 'application/json',
        'set-cookie': ['idp_session=abc; HttpOnly', 'other=1'],
        'cache-control': 'no-store',
        pragma: 'no-cache',
        'x-request-id': 'up-123',
        connection: 'keep-alive, x-private-hop',
        'x-private-hop': 'secret-hop',
        'keep-alive': 'timeout=5',
      },
      '{"access_token":"at"}',
    );
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['x-private-hop']).toBeUndefined();
    expect(res.headers['keep-alive']).toBeUndefined();
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['pragma']).toBe('no-cache');
    expect(res.headers['x-request-id']).toBe('up-123');
  });

  it('an empty 204 stays empty', async () => {
    const res = await relay(204, {}, '');
    expect(res.status).toBe(204);
    expect(res.body.length).toBe(0);
  });

  it('a redirect is passed through, never followed', async () => {
    const res = await relay(302, { location: 'https://elsewhere.example/token' }, '');
    expect(res.status).toBe(302);
    expect(res.headers['location']).toBe('https://elsewhere.example/token');
    expect(upstream!.requests).toHaveLength(1);
  });

  it('a gzip-encoded reply arrives as the same JSON, decoded, without Content-Encoding', async () => {
    const json = '{"access_token":"at","refresh_token":"rt-gz"}';
    const res = await relay(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync(json));
    expect(res.body.toString()).toBe(json);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(upstream!.requests[0]!.headers['accept-encoding']).toBe('identity');
  });

  it('headers the host app set before the router (cors, for one) are kept', async () => {
    upstream = await rawUpstream(fixedReply(200, { 'content-type': 'application/json' }, '{}'));
    const res = await request(
      hostApp({ upstream: { tokenUrl: upstream.url } }, [
        (_req, res, next) => {
          res.setHeader('access-control-allow-origin', 'https://app.example');
          next();
        },
      ]),
    )
      .post('/auth/refresh_token')
      .set('authorization', 'Bearer rt');
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example');
  });
});
