import { createHash } from 'node:crypto';
import { format } from 'node:util';
import createDebug from 'debug';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NinjaAuthEvent, NinjaAuthHooks, NinjaAuthOptions } from '../../src/index.js';
import { eventually, hostApp } from '../helpers/host.js';
import { type RawUpstream, rawUpstream } from '../helpers/servers.js';

// A hook that throws an error quoting every secret of its request: whatever the event type, the debug log shows
// each of them only as its fingerprint. Pinned because upstream_error and reuse_detected once redacted nothing.
const CLIENT_SECRET = 'client-secret-5e1f0c';
const AUTH_KEY = 'auth-key-93b2d7aa';
const PASSWORD = 'password-c0ffee-42';
const ISSUED = { access: 'at-issued-7d61', refresh: 'rt-issued-0b9e', id: 'idt-issued-44c2' };

/** The documented form, computed here rather than with the code's own `fingerprint()`. */
const documentedFingerprint = (secret: string): string => `sha256:${createHash('sha256').update(secret, 'utf8').digest('hex').slice(0, 8)}`;

let upstream: RawUpstream;
beforeAll(async () => {
  upstream = await rawUpstream((res, seen) => {
    const refused = seen.form.get('refresh_token') === 'rt-refused-81aa' || seen.form.get('password') === 'wrong-pass-17';
    res.writeHead(refused ? 400 : 200, { 'content-type': 'application/json' });
    res.end(refused ? '{"error":"invalid_grant"}' : JSON.stringify({ access_token: ISSUED.access, refresh_token: ISSUED.refresh, id_token: ISSUED.id, token_type: 'Bearer' }));
  });
});
afterAll(async () => {
  await upstream.close();
});

const lines: string[] = [];
beforeEach(() => {
  lines.length = 0;
  createDebug.enable('ninja-auth:*');
  createDebug.log = (...args: unknown[]) => void lines.push(format(...args));
  return () => createDebug.disable();
});

/** A host whose every hook throws a message quoting `secrets`, and records which hooks ran. */
function leakyHost(secrets: string[], ran: NinjaAuthEvent[], extra: NinjaAuthOptions = {}) {
  const leak = (event: NinjaAuthEvent): never => {
    ran.push(event);
    throw new Error(`could not store ${secrets.join(' and ')}`);
  };
  const hooks: NinjaAuthHooks = { onTokenIssued: leak, onRotation: leak, onRevoke: leak, onUpstreamError: leak, onReuseDetected: leak };
  return hostApp({
    upstream: { tokenUrl: upstream.url, revokeUrl: `${upstream.origin}/revoke` },
    clientId: 'redaction-app',
    clientSecret: CLIENT_SECRET,
    authKey: AUTH_KEY,
    reuseGraceMs: 0,
    hooks,
    ...extra,
  });
}

function expectRedacted(secrets: string[]): void {
  const log = lines.filter((line) => line.includes('failed for request')).join('\n');
  expect(log).not.toBe('');
  for (const secret of secrets) {
    expect(log).not.toContain(secret);
    expect(log).toContain(documentedFingerprint(secret));
  }
}

const everyConfigured = [CLIENT_SECRET, AUTH_KEY];

describe('a hook error quoting its request’s secrets is logged with fingerprints only', () => {
  it('token_issued: password, issued tokens, the client secret and the authKey', async () => {
    const ran: NinjaAuthEvent[] = [];
    const secrets = [PASSWORD, ISSUED.access, ISSUED.refresh, ISSUED.id, ...everyConfigured];
    const res = await request(leakyHost(secrets, ran)).post('/auth/token').set('authorization', `Bearer ${AUTH_KEY}`).type('form').send({ username: 'alice', password: PASSWORD });
    expect(res.status).toBe(200);
    await eventually(() => ran.length === 1 && lines.some((l) => l.includes('failed for request')));
    expect(ran[0]!.type).toBe('token_issued');
    expectRedacted(secrets);
  });

  it('token_issued: an authorization code and its PKCE verifier', async () => {
    const ran: NinjaAuthEvent[] = [];
    const secrets = ['code-6f7a1b2c', 'verifier-0d9e8f7a6b5c', ...everyConfigured];
    const res = await request(leakyHost(secrets, ran)).post('/auth/token').set('authorization', `Bearer ${AUTH_KEY}`).type('form').send({ grant_type: 'authorization_code', code: secrets[0], code_verifier: secrets[1] });
    expect(res.status).toBe(200);
    await eventually(() => ran.length === 1 && lines.some((l) => l.includes('failed for request')));
    expectRedacted(secrets);
  });

  it('token_issued: the subject and actor tokens of a token exchange (a grant an app can allow)', async () => {
    const ran: NinjaAuthEvent[] = [];
    const secrets = ['subject-token-5d2e91', 'actor-token-77c0a4', ...everyConfigured];
    const grant = 'urn:ietf:params:oauth:grant-type:token-exchange';
    const host = leakyHost(secrets, ran, { grantTypes: [grant] });
    const res = await request(host).post('/auth/token').set('authorization', `Bearer ${AUTH_KEY}`).type('form').send({ grant_type: grant, subject_token: secrets[0], actor_token: secrets[1] });
    expect(res.status).toBe(200);
    await eventually(() => ran.length === 1 && lines.some((l) => l.includes('failed for request')));
    expectRedacted(secrets);
  });

  it('rotation: the presented refresh token and the issued ones', async () => {
    const ran: NinjaAuthEvent[] = [];
    const secrets = ['rt-presented-5a5a', ISSUED.access, ISSUED.refresh, ...everyConfigured];
    const res = await request(leakyHost(secrets, ran)).post('/auth/refresh_token').set('authorization', `Bearer ${secrets[0]}`);
    expect(res.status).toBe(200);
    await eventually(() => ran.length === 1 && lines.some((l) => l.includes('failed for request')));
    expect(ran[0]!.type).toBe('rotation');
    expectRedacted(secrets);
  });

  it('revoke: the revoked token', async () => {
    const ran: NinjaAuthEvent[] = [];
    const secrets = ['rt-revoked-3c3c', ...everyConfigured];
    const res = await request(leakyHost(secrets, ran)).post('/auth/revoke_token').type('form').send({ token: secrets[0] });
    expect(res.status).toBe(200);
    await eventually(() => ran.length === 1 && lines.some((l) => l.includes('failed for request')));
    expect(ran[0]!.type).toBe('revoke');
    expectRedacted(secrets);
  });

  it('upstream_error: the refused refresh token', async () => {
    const ran: NinjaAuthEvent[] = [];
    const secrets = ['rt-refused-81aa', ...everyConfigured];
    const res = await request(leakyHost(secrets, ran)).post('/auth/refresh_token').type('form').send({ refresh_token: secrets[0] });
    expect(res.status).toBe(400);
    await eventually(() => ran.length === 1 && lines.some((l) => l.includes('failed for request')));
    expect(ran[0]!.type).toBe('upstream_error');
    expectRedacted(secrets);
  });

  it('upstream_error: the refused password', async () => {
    const ran: NinjaAuthEvent[] = [];
    const secrets = ['wrong-pass-17', ...everyConfigured];
    const res = await request(leakyHost(secrets, ran)).post('/auth/token').set('authorization', `Bearer ${AUTH_KEY}`).type('form').send({ username: 'bob', password: secrets[0] });
    expect(res.status).toBe(400);
    await eventually(() => ran.length === 1 && lines.some((l) => l.includes('failed for request')));
    expect(ran[0]!.type).toBe('upstream_error');
    expectRedacted(secrets);
  });

  it('reuse_detected: the rotated-away token presented again', async () => {
    const ran: NinjaAuthEvent[] = [];
    const secrets = ['rt-reused-9d9d', ISSUED.access, ISSUED.refresh, ...everyConfigured];
    const host = leakyHost(secrets, ran);
    expect((await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${secrets[0]}`)).status).toBe(200);
    await eventually(() => ran.length === 1);
    lines.length = 0;
    expect((await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${secrets[0]}`)).status).toBe(200);
    await eventually(() => ran.length === 3 && lines.filter((l) => l.includes('failed for request')).length === 2);
    expect(ran.map((e) => e.type)).toEqual(['rotation', 'rotation', 'reuse_detected']);
    expectRedacted(secrets);
  });
});
