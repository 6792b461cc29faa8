import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CLIENT, DEMO_USER } from '../../example-app/provider.js';
import type { RotationEvent, TokenIssuedEvent } from '../../src/index.js';
import { asBytes, eventually, hostApp } from '../helpers/host.js';
import { type ProviderUnderTest, startProvider } from '../helpers/servers.js';

// Behaviour that is the provider's (grants, rotation, invalidation, revocation) is tested against the
// embedded @node-oauth/oauth2-server provider, and every body is compared with the bytes it sent.
let provider: ProviderUnderTest;
beforeAll(async () => {
  provider = await startProvider();
});
afterAll(async () => {
  await provider.close();
});

function app(extra: Parameters<typeof hostApp>[0] = {}) {
  return hostApp({
    upstream: { tokenUrl: provider.tokenUrl, revokeUrl: provider.revokeUrl },
    clientId: DEMO_CLIENT.id,
    clientSecret: DEMO_CLIENT.secret,
    ...extra,
  });
}

const lastSent = (): Buffer => provider.sentBodies.at(-1)!;

async function login(host = app()) {
  const res = await request(host)
    .post('/auth/token')
    .type('form')
    .send({ username: DEMO_USER.username, password: DEMO_USER.password })
    .buffer(true)
    .parse(asBytes);
  expect(res.status).toBe(200);
  return { res, tokens: JSON.parse(res.body.toString()) as Record<string, string> };
}

describe('grants against a real provider', () => {
  it('password grant from a bare username and password (the ninja form), bytes as sent', async () => {
    const { res, tokens } = await login();
    expect(res.body.equals(lastSent())).toBe(true);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(tokens.refresh_token).toMatch(/^rt_/);
  });

  it('password grant with grant_type and a JSON body', async () => {
    const res = await request(app())
      .post('/auth/token')
      .send({ grant_type: 'password', username: DEMO_USER.username, password: DEMO_USER.password })
      .buffer(true)
      .parse(asBytes);
    expect(res.status).toBe(200);
    expect(res.body.equals(lastSent())).toBe(true);
  });

  it('wrong password: the provider error passes through unchanged', async () => {
    const res = await request(app())
      .post('/auth/token')
      .type('form')
      .send({ username: DEMO_USER.username, password: 'wrong' })
      .buffer(true)
      .parse(asBytes);
    expect(res.status).toBe(400);
    expect(res.body.equals(lastSent())).toBe(true);
    expect(JSON.parse(res.body.toString()).error).toBe('invalid_grant');
  });

  it('client_credentials', async () => {
    const res = await request(app()).post('/auth/token').type('form').send({ grant_type: 'client_credentials' }).buffer(true).parse(asBytes);
    expect(res.status).toBe(200);
    expect(res.body.equals(lastSent())).toBe(true);
    expect(JSON.parse(res.body.toString()).access_token).toMatch(/^at_/);
  });

  it('authorization_code: a code the provider issued is exchanged', async () => {
    const authorize = await request(provider.server)
      .get('/oauth/authorize')
      .query({ response_type: 'code', client_id: DEMO_CLIENT.id, redirect_uri: DEMO_CLIENT.redirectUris[0], state: 'xyz', login: DEMO_USER.username });
    expect(authorize.status).toBe(302);
    const code = new URL(authorize.headers['location'] as string).searchParams.get('code');
    expect(code).toBeTruthy();
    const res = await request(app())
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'authorization_code', code, redirect_uri: DEMO_CLIENT.redirectUris[0] })
      .buffer(true)
      .parse(asBytes);
    expect(res.status).toBe(200);
    expect(res.body.equals(lastSent())).toBe(true);
  });

  it('client_secret_basic authenticates just as well', async () => {
    const { tokens } = await login(app({ clientAuth: 'client_secret_basic' }));
    expect(tokens.access_token).toMatch(/^at_/);
  });
});

describe('rotation: the regression that started this project', () => {
  it('refresh, then refresh again with the token the first refresh returned: both succeed', async () => {
    const rotations: RotationEvent[] = [];
    const host = app({ hooks: { onRotation: (event) => void rotations.push(event) } });
    const { tokens } = await login(host);

    const first = await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${tokens.refresh_token}`).buffer(true).parse(asBytes);
    expect(first.status).toBe(200);
    expect(first.body.equals(lastSent())).toBe(true);
    const firstTokens = JSON.parse(first.body.toString());
    expect(firstTokens.refresh_token).not.toBe(tokens.refresh_token);

    const second = await request(host).post('/auth/refresh_token').type('form').send({ refresh_token: firstTokens.refresh_token }).buffer(true).parse(asBytes);
    expect(second.status).toBe(200);
    expect(second.body.equals(lastSent())).toBe(true);
    const secondTokens = JSON.parse(second.body.toString());
    expect(secondTokens.refresh_token).not.toBe(firstTokens.refresh_token);

    // The provider really invalidated the rotated token: the caller must never be handed it back.
    const stale = await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${tokens.refresh_token}`).buffer(true).parse(asBytes);
    expect(stale.status).toBe(400);
    expect(stale.body.equals(lastSent())).toBe(true);

    await eventually(() => rotations.length === 2);
    expect(rotations.map((r) => [r.previousRefreshToken, r.tokens.refreshToken, r.rotated])).toEqual([
      [tokens.refresh_token, firstTokens.refresh_token, true],
      [firstTokens.refresh_token, secondTokens.refresh_token, true],
    ]);
  });

  it('grant_type=refresh_token on /token behaves as /refresh_token', async () => {
    const rotations: RotationEvent[] = [];
    const host = app({ hooks: { onRotation: (event) => void rotations.push(event) } });
    const { tokens } = await login(host);
    const res = await request(host).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }).buffer(true).parse(asBytes);
    expect(res.status).toBe(200);
    expect(res.body.equals(lastSent())).toBe(true);
    await eventually(() => rotations.length === 1);
    expect(rotations[0]!.endpoint).toBe('token');
    expect(rotations[0]!.previousRefreshToken).toBe(tokens.refresh_token);
  });
});

describe('revocation (RFC 7009) against a real provider', () => {
  it('revoke through the router, then the refresh is refused by the provider', async () => {
    const issued: TokenIssuedEvent[] = [];
    const host = app({ hooks: { onTokenIssued: (event) => void issued.push(event) } });
    const { tokens } = await login(host);
    const revoked = await request(host).post('/auth/revoke_token').set('authorization', `Bearer ${tokens.refresh_token}`);
    expect(revoked.status).toBe(200);
    const refused = await request(host).post('/auth/refresh_token').send({ refresh_token: tokens.refresh_token }).buffer(true).parse(asBytes);
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body.toString()).error).toBe('invalid_grant');
    await eventually(() => issued.length === 1);
    expect(issued[0]!.username).toBe(DEMO_USER.username);
  });

  it('revoke with the token in the body and a token_type_hint', async () => {
    const host = app();
    const { tokens } = await login(host);
    const revoked = await request(host).post('/auth/revoke_token').type('form').send({ token: tokens.access_token, token_type_hint: 'access_token' });
    expect(revoked.status).toBe(200);
    expect(lastSent().length).toBe(0);
  });
});
