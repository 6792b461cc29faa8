import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NinjaAuthOptions } from '../../src/index.js';
import { asBytes, hostApp } from '../helpers/host.js';
import { type OidcUnderTest, oidcClient, startOidcProvider } from '../helpers/oidc.js';

// Interoperability with panva's oidc-provider, a certified OpenID provider, with strict rotation on.
// Client ids and secrets with characters that RFC 6749 §2.3.1 form-encoding changes, for client_secret_basic.
const POST_CLIENT = { id: 'interop-post', secret: 'post-secret-4f1a' };
const BASIC_CLIENT = { id: 'interop basic:1', secret: 's3%cr:t+/=&?~' };

let op: OidcUnderTest;
beforeAll(async () => {
  op = await startOidcProvider([
    oidcClient(POST_CLIENT.id, POST_CLIENT.secret, 'client_secret_post'),
    oidcClient(BASIC_CLIENT.id, BASIC_CLIENT.secret, 'client_secret_basic'),
  ]);
});
afterAll(async () => {
  await op.close();
});

const lastReply = (): Buffer => op.tokenReplies.at(-1)!;

const setups: Array<[string, () => NinjaAuthOptions, { id: string }]> = [
  ['client_secret_post', () => ({ upstream: { tokenUrl: op.tokenUrl, revokeUrl: op.revokeUrl }, clientId: POST_CLIENT.id, clientSecret: POST_CLIENT.secret }), POST_CLIENT],
  [
    'client_secret_basic',
    () => ({ upstream: { tokenUrl: op.tokenUrl, revokeUrl: op.revokeUrl }, clientId: BASIC_CLIENT.id, clientSecret: BASIC_CLIENT.secret, clientAuth: 'client_secret_basic' }),
    BASIC_CLIENT,
  ],
  ['issuer alone (endpoints and client auth from discovery)', () => ({ upstream: { issuer: op.issuer }, clientId: BASIC_CLIENT.id, clientSecret: BASIC_CLIENT.secret }), BASIC_CLIENT],
];

describe.each(setups)('oidc-provider, %s', (_name, options, client) => {
  it('authorization code + PKCE, rotating refreshes, the old token refused, revocation', async () => {
    const host = hostApp(options());
    const { code, codeVerifier, redirectUri } = await op.authorize(client.id);
    const exchanged = await request(host).post('/auth/token').type('form').send({ grant_type: 'authorization_code', code, code_verifier: codeVerifier, redirect_uri: redirectUri }).buffer(true).parse(asBytes);
    expect(exchanged.status).toBe(200);
    expect(exchanged.body.equals(lastReply())).toBe(true);
    const issued = JSON.parse(exchanged.body.toString());
    expect(issued.refresh_token).toBeTruthy();
    expect(issued.id_token).toBeTruthy();

    let token = issued.refresh_token as string;
    for (let i = 0; i < 3; i++) {
      const refreshed = await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).buffer(true).parse(asBytes);
      expect(refreshed.status).toBe(200);
      expect(refreshed.body.equals(lastReply())).toBe(true);
      const next = JSON.parse(refreshed.body.toString()).refresh_token as string;
      expect(next).not.toBe(token);
      token = next;
    }

    const revoked = await request(host).post('/auth/revoke_token').type('form').send({ token, token_type_hint: 'refresh_token' });
    expect(revoked.status).toBe(200);
    const refused = await request(host).post('/auth/refresh_token').type('form').send({ refresh_token: token }).buffer(true).parse(asBytes);
    expect(refused.status).toBe(400);
    expect(refused.body.equals(lastReply())).toBe(true);
    expect(JSON.parse(refused.body.toString()).error).toBe('invalid_grant');
  });

  it('a rotated-away token, once its successor is in use, is refused with the provider’s own error', async () => {
    const host = hostApp(options());
    const { code, codeVerifier, redirectUri } = await op.authorize(client.id);
    const first = await request(host).post('/auth/token').type('form').send({ grant_type: 'authorization_code', code, code_verifier: codeVerifier, redirect_uri: redirectUri });
    const original = first.body.refresh_token as string;
    const second = await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${original}`);
    expect((await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${second.body.refresh_token}`)).status).toBe(200);
    const stale = await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${original}`).buffer(true).parse(asBytes);
    expect(stale.status).toBe(400);
    expect(stale.body.equals(lastReply())).toBe(true);
    expect(JSON.parse(stale.body.toString())).toMatchObject({ error: 'invalid_grant' });
  });
});
