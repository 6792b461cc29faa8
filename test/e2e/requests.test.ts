import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NinjaAuthOptions } from '../../src/index.js';
import { hostApp } from '../helpers/host.js';
import { fixedReply, type RawUpstream, rawUpstream } from '../helpers/servers.js';

// The router's own decisions: what it refuses (never reaching the upstream) and what it sends upstream.
const REPLY = '{"access_token":"at","refresh_token":"rt-next","token_type":"Bearer"}';
let upstream: RawUpstream;
beforeAll(async () => {
  upstream = await rawUpstream(fixedReply(200, { 'content-type': 'application/json' }, REPLY));
});
afterAll(async () => {
  await upstream.close();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

const base = (): NinjaAuthOptions => ({
  upstream: { tokenUrl: upstream.url, revokeUrl: `${upstream.origin}/revoke` },
  clientId: 'server-client',
  clientSecret: 'server-secret',
});
const app = (extra: NinjaAuthOptions = {}) => hostApp({ ...base(), ...extra });

function expectRefusal(res: request.Response, status: number, error: string): void {
  expect(res.status).toBe(status);
  expect(res.body.error).toBe(error);
  expect(typeof res.body.error_description).toBe('string');
  expect(res.headers['cache-control']).toBe('no-store');
  expect(upstream.requests).toHaveLength(0);
}

describe('refused before the upstream', () => {
  it.each(['get', 'put', 'delete'] as const)('%s → 405 with Allow: POST', async (method) => {
    const res = await request(app())[method]('/auth/token');
    expectRefusal(res, 405, 'invalid_request');
    expect(res.headers['allow']).toBe('POST');
  });

  it('a content type other than form or JSON → 415', async () => {
    const res = await request(app()).post('/auth/token').set('content-type', 'text/plain').send('username=a&password=b');
    expectRefusal(res, 415, 'invalid_request');
  });

  it('a body over maxBodyBytes → 413, by Content-Length or by counting a chunked body', async () => {
    const host = app({ maxBodyBytes: 64 });
    const big = { username: 'u', password: 'p'.repeat(100) };
    expectRefusal(await request(host).post('/auth/token').type('form').send(big), 413, 'invalid_request');
    const chunked = request(host).post('/auth/token').set('content-type', 'application/x-www-form-urlencoded').set('transfer-encoding', 'chunked');
    chunked.write('username=u&password=');
    chunked.write('p'.repeat(100));
    expectRefusal(await chunked, 413, 'invalid_request');
  });

  it('malformed JSON → 400', async () => {
    const res = await request(app()).post('/auth/token').set('content-type', 'application/json').send('{"username": "a", ');
    expectRefusal(res, 400, 'invalid_request');
  });

  it('a JSON body that is not an object → 400', async () => {
    const res = await request(app()).post('/auth/token').set('content-type', 'application/json').send('["username"]');
    expectRefusal(res, 400, 'invalid_request');
  });

  it('a form parameter sent twice → 400', async () => {
    const res = await request(app()).post('/auth/token').type('form').send('username=a&password=b&password=c');
    expectRefusal(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('"password"');
  });

  it('a JSON key sent twice → 400', async () => {
    const res = await request(app()).post('/auth/token').set('content-type', 'application/json').send('{"username":"a","password":"b","nested":"{\\"password\\":1}", "password" : "c"}');
    expectRefusal(res, 400, 'invalid_request');
    expect(res.body.error_description).toContain('"password"');
  });

  it('a value that is not a string → 400', async () => {
    const res = await request(app()).post('/auth/token').send({ username: 'a', password: { $ne: '' } });
    expectRefusal(res, 400, 'invalid_request');
  });

  it('no grant_type and no username/password → 400', async () => {
    expectRefusal(await request(app()).post('/auth/token').type('form').send({ scope: 'x' }), 400, 'invalid_request');
  });

  it('a grant type outside grantTypes → 400 unsupported_grant_type', async () => {
    const res = await request(app({ grantTypes: ['password'] })).post('/auth/token').type('form').send({ grant_type: 'client_credentials' });
    expectRefusal(res, 400, 'unsupported_grant_type');
  });

  it('without refresh_token in grantTypes, /refresh_token answers unsupported_grant_type too', async () => {
    const res = await request(app({ grantTypes: ['password'] })).post('/auth/refresh_token').set('authorization', 'Bearer rt');
    expectRefusal(res, 400, 'unsupported_grant_type');
  });

  it.each([
    ['password', { grant_type: 'password', username: 'a' }],
    ['authorization_code', { grant_type: 'authorization_code' }],
    ['refresh_token', { grant_type: 'refresh_token' }],
  ])('%s without its required parameters → 400', async (_grant, body) => {
    expectRefusal(await request(app()).post('/auth/token').type('form').send(body), 400, 'invalid_request');
  });

  it('refresh token in both the header and the body → 400', async () => {
    const res = await request(app()).post('/auth/refresh_token').set('authorization', 'Bearer rt-a').type('form').send({ refresh_token: 'rt-b' });
    expectRefusal(res, 400, 'invalid_request');
  });

  it('no refresh token at all, or a non-Bearer Authorization → 400', async () => {
    expectRefusal(await request(app()).post('/auth/refresh_token'), 400, 'invalid_request');
    expectRefusal(await request(app()).post('/auth/refresh_token').set('authorization', 'Basic YTpi'), 400, 'invalid_request');
  });

  it('revoke without a token, or with it twice → 400', async () => {
    expectRefusal(await request(app()).post('/auth/revoke_token'), 400, 'invalid_request');
    const twice = await request(app()).post('/auth/revoke_token').set('authorization', 'Bearer t1').type('form').send({ token: 't2' });
    expectRefusal(twice, 400, 'invalid_request');
  });

  it('revoke without revokeUrl → 501 unsupported_operation', async () => {
    const res = await request(hostApp({ upstream: { tokenUrl: upstream.url } })).post('/auth/revoke_token').type('form').send({ token: 't' });
    expectRefusal(res, 501, 'unsupported_operation');
  });
});

describe('authKey and allowUsernames', () => {
  const login = { username: 'alice', password: 'pw' };

  it('authKey set: missing → 401 with a Bearer challenge, wrong → 403, right → forwarded', async () => {
    const host = app({ authKey: 'k3y-for-the-gateway' });
    const missing = await request(host).post('/auth/token').type('form').send(login);
    expectRefusal(missing, 401, 'invalid_client');
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);
    expectRefusal(await request(host).post('/auth/token').set('authorization', 'Bearer nope').type('form').send(login), 403, 'access_denied');
    const right = await request(host).post('/auth/token').set('authorization', 'Bearer k3y-for-the-gateway').type('form').send(login);
    expect(right.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]!.headers['authorization']).toBeUndefined();
  });

  it('authKey does not gate /refresh_token or /revoke_token: the token is the credential', async () => {
    const host = app({ authKey: 'k3y' });
    expect((await request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt')).status).toBe(200);
    expect((await request(host).post('/auth/revoke_token').set('authorization', 'Bearer rt')).status).toBe(200);
  });

  it('with authKey, a refresh on /token takes the refresh token from the body', async () => {
    const res = await request(app({ authKey: 'k3y' })).post('/auth/token').set('authorization', 'Bearer k3y').type('form').send({ grant_type: 'refresh_token', refresh_token: 'rt-body' });
    expect(res.status).toBe(200);
    expect(upstream.requests[0]!.form.get('refresh_token')).toBe('rt-body');
  });

  it('allowUsernames as a list', async () => {
    const host = app({ allowUsernames: ['bob'] });
    expectRefusal(await request(host).post('/auth/token').type('form').send(login), 403, 'access_denied');
    expect((await request(host).post('/auth/token').type('form').send({ username: 'bob', password: 'pw' })).status).toBe(200);
  });

  it('allowUsernames as a function, sync or async; it only gates the password grant', async () => {
    const host = app({ allowUsernames: async (username) => username.endsWith('@corp.example') });
    expectRefusal(await request(host).post('/auth/token').type('form').send(login), 403, 'access_denied');
    expect((await request(host).post('/auth/token').type('form').send({ username: 'a@corp.example', password: 'pw' })).status).toBe(200);
    expect((await request(host).post('/auth/token').type('form').send({ grant_type: 'client_credentials' })).status).toBe(200);
  });
});

describe('what is sent upstream', () => {
  it('client_secret_post: the server-side credentials replace the caller’s; a caller secret never leaves', async () => {
    await request(app()).post('/auth/token').type('form').send({ ...{ username: 'u', password: 'p' }, client_id: 'evil', client_secret: 'guess' });
    const form = upstream.requests[0]!.form;
    expect(form.get('grant_type')).toBe('password');
    expect(form.getAll('client_id')).toEqual(['server-client']);
    expect(form.getAll('client_secret')).toEqual(['server-secret']);
    expect(upstream.requests[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });

  it('client_secret_basic: id and secret form-encoded before base64 (RFC 6749 §2.3.1), nothing in the body', async () => {
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, clientId: 'id with space', clientSecret: 'sé:cret/+', clientAuth: 'client_secret_basic' });
    await request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt').type('form').send({ client_secret: 'caller' });
    const seen = upstream.requests[0]!;
    const decoded = Buffer.from(seen.headers['authorization']!.replace(/^Basic /, ''), 'base64').toString();
    expect(decoded).toBe('id+with+space:s%C3%A9%3Acret%2F%2B');
    expect(seen.form.has('client_id')).toBe(false);
    expect(seen.form.has('client_secret')).toBe(false);
  });

  it('no clientId configured: a public client’s own client_id passes through, its secret does not', async () => {
    await request(hostApp({ upstream: { tokenUrl: upstream.url } })).post('/auth/refresh_token').type('form').send({ refresh_token: 'rt', client_id: 'spa', client_secret: 'x' });
    const form = upstream.requests[0]!.form;
    expect(form.get('client_id')).toBe('spa');
    expect(form.has('client_secret')).toBe(false);
  });

  it('extraParams are added where the caller sent none, never over the caller’s, and not on revocation', async () => {
    const host = app({ extraParams: { audience: 'https://api.example', scope: 'openid offline_access' } });
    await request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt').type('form').send({ scope: 'openid' });
    const refresh = upstream.requests[0]!.form;
    expect(refresh.get('grant_type')).toBe('refresh_token');
    expect(refresh.get('refresh_token')).toBe('rt');
    expect(refresh.get('audience')).toBe('https://api.example');
    expect(refresh.getAll('scope')).toEqual(['openid']);
    await request(host).post('/auth/revoke_token').type('form').send({ token: 'rt', token_type_hint: 'refresh_token' });
    const revoke = upstream.requests[1]!;
    expect(revoke.url).toBe('/revoke');
    expect([...revoke.form.keys()].sort()).toEqual(['client_id', 'client_secret', 'token', 'token_type_hint']);
  });

  it('the bearer form of /refresh_token is forwarded as grant_type=refresh_token', async () => {
    await request(app()).post('/auth/refresh_token').set('authorization', 'bearer rt-from-header');
    expect(upstream.requests[0]!.form.get('grant_type')).toBe('refresh_token');
    expect(upstream.requests[0]!.form.get('refresh_token')).toBe('rt-from-header');
  });
});

describe('embedding', () => {
  it('works after the host app parsed the body itself (express.json / express.urlencoded)', async () => {
    const host = hostApp(base(), [express.json(), express.urlencoded({ extended: true })]);
    const viaJson = await request(host).post('/auth/token').send({ username: 'u', password: 'p' });
    expect(viaJson.status).toBe(200);
    const viaForm = await request(host).post('/auth/refresh_token').type('form').send({ refresh_token: 'rt' });
    expect(viaForm.status).toBe(200);
    expect(upstream.requests.map((r) => r.form.get('grant_type'))).toEqual(['password', 'refresh_token']);
    const nested = await request(host).post('/auth/token').type('form').send('username=u&password[$ne]=x');
    expect(nested.status).toBe(400);
    const repeated = await request(host).post('/auth/token').type('form').send('username=u&password=a&password=b');
    expect(repeated.status).toBe(400);
    expect(upstream.requests).toHaveLength(2);
  });

  it('a custom prefix, a trailing slash, and other paths left to the host app', async () => {
    const host = app({ prefix: '/oauth/proxy/' });
    expect((await request(host).post('/oauth/proxy/refresh_token/').set('authorization', 'Bearer rt')).status).toBe(200);
    const other = await request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt');
    expect(other.status).toBe(404);
    expect(other.text).toBe('host app: not found');
  });

  it('mounted under a path with app.use(path, router)', async () => {
    const host = express();
    host.use('/api', (await import('../../src/index.js')).ninjaAuth(base()));
    expect((await request(host).post('/api/auth/refresh_token').set('authorization', 'Bearer rt')).status).toBe(200);
  });
});
