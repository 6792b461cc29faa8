import { createHash } from 'node:crypto';
import { format } from 'node:util';
import createDebug from 'debug';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CLIENT, DEMO_USER } from '../../example-app/provider.js';
import { eventually, hostApp } from '../helpers/host.js';
import { type ProviderUnderTest, startProvider } from '../helpers/servers.js';

// The debug output of a whole token → refresh → revoke flow, captured line by line.
const lines: string[] = [];
let provider: ProviderUnderTest;
const AUTH_KEY = 'gateway-key-0123456789';
/** The documented form, `sha256:` and the first 8 hex digits of SHA-256, computed here rather than by the code under test. */
const fingerprint = (token: string): string => `sha256:${createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 8)}`;

beforeAll(async () => {
  provider = await startProvider();
  createDebug.enable('ninja-auth:*');
  createDebug.log = (...args: unknown[]) => void lines.push(format(...args));
});
afterAll(async () => {
  createDebug.disable();
  await provider.close();
});

describe('debug logging', () => {
  it('one useful line per request, and never a whole token, password, key or client secret', async () => {
    let hookCalls = 0;
    const host = hostApp({
      upstream: { tokenUrl: provider.tokenUrl, revokeUrl: provider.revokeUrl },
      clientId: DEMO_CLIENT.id,
      clientSecret: DEMO_CLIENT.secret,
      authKey: AUTH_KEY,
      hooks: {
        // A careless hook that puts the token in its error message: the log must still not show it.
        onRotation: (event) => {
          hookCalls++;
          throw new Error(`could not persist ${event.tokens.refreshToken} for ${event.previousRefreshToken}`);
        },
      },
    });
    const secrets = [DEMO_CLIENT.secret, DEMO_USER.password, AUTH_KEY];

    const login = await request(host).post('/auth/token').set('authorization', `Bearer ${AUTH_KEY}`).type('form').send({ username: DEMO_USER.username, password: DEMO_USER.password });
    expect(login.status).toBe(200);
    secrets.push(login.body.access_token, login.body.refresh_token);

    const refreshed = await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${login.body.refresh_token}`);
    expect(refreshed.status).toBe(200);
    secrets.push(refreshed.body.access_token, refreshed.body.refresh_token);
    await eventually(() => hookCalls === 1 && lines.some((l) => l.includes('onRotation failed')));

    const revoked = await request(host).post('/auth/revoke_token').type('form').send({ token: refreshed.body.refresh_token });
    expect(revoked.status).toBe(200);
    const refused = await request(host).post('/auth/refresh_token').type('form').send({ refresh_token: refreshed.body.refresh_token });
    expect(refused.status).toBe(400);
    const wrongKey = await request(host).post('/auth/token').set('authorization', 'Bearer not-the-key-but-long').type('form').send({ username: 'x', password: 'hunter2-long' });
    expect(wrongKey.status).toBe(403);
    secrets.push('not-the-key-but-long', 'hunter2-long');

    const log = lines.join('\n');
    for (const secret of secrets) expect(log).not.toContain(secret);

    const requestLines = lines.filter((l) => /ninja-auth:proxy/.test(l));
    expect(requestLines).toHaveLength(5);
    expect(requestLines[0]).toMatch(/token 200 [\d.]+ms id=\w{8} grant=password/);
    expect(requestLines[0]).toContain(`refresh=${fingerprint(login.body.refresh_token)}`);
    expect(requestLines[1]).toMatch(/refresh_token 200 /);
    expect(requestLines[1]).toContain(`presented=${fingerprint(login.body.refresh_token)}`);
    expect(requestLines[1]).toContain(`refresh=${fingerprint(refreshed.body.refresh_token)}`);
    expect(requestLines[2]).toContain(`revoke_token 200`);
    expect(requestLines[2]).toContain(`revoked=${fingerprint(refreshed.body.refresh_token)}`);
    expect(requestLines[3]).toMatch(/refresh_token 400 invalid_grant /);
    expect(requestLines[4]).toMatch(/token 403 access_denied/);

    const hookLine = lines.find((l) => l.includes('onRotation failed'))!;
    expect(hookLine).toContain(fingerprint(refreshed.body.refresh_token));
    expect(hookLine).toContain(fingerprint(login.body.refresh_token));
  });
});
