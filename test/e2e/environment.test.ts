import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CLIENT, DEMO_USER } from '../../example-app/provider.js';
import { ninjaAuth } from '../../src/index.js';
import { type ProviderUnderTest, startProvider } from '../helpers/servers.js';

// app.use(ninjaAuth()) with nothing but NINJA_AUTH_* variables, against the embedded provider.
const VARIABLES = ['NINJA_AUTH_TOKEN_URL', 'NINJA_AUTH_REVOKE_URL', 'NINJA_AUTH_CLIENT_ID', 'NINJA_AUTH_CLIENT_SECRET', 'NINJA_AUTH_KEY'] as const;
let provider: ProviderUnderTest;
const saved: Partial<Record<(typeof VARIABLES)[number], string | undefined>> = {};

beforeAll(async () => {
  provider = await startProvider();
  for (const name of VARIABLES) saved[name] = process.env[name];
  process.env['NINJA_AUTH_TOKEN_URL'] = provider.tokenUrl;
  process.env['NINJA_AUTH_REVOKE_URL'] = provider.revokeUrl;
  process.env['NINJA_AUTH_CLIENT_ID'] = DEMO_CLIENT.id;
  process.env['NINJA_AUTH_CLIENT_SECRET'] = DEMO_CLIENT.secret;
  process.env['NINJA_AUTH_KEY'] = 'env-gateway-key';
});
afterAll(async () => {
  for (const name of VARIABLES) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
  await provider.close();
});

describe('configured from the environment alone', () => {
  it('log in (gated by NINJA_AUTH_KEY), refresh and revoke with app.use(ninjaAuth())', async () => {
    const app = express();
    app.use(ninjaAuth());
    const login = { username: DEMO_USER.username, password: DEMO_USER.password };
    expect((await request(app).post('/auth/token').type('form').send(login)).status).toBe(401);
    const issued = await request(app).post('/auth/token').set('authorization', 'Bearer env-gateway-key').type('form').send(login);
    expect(issued.status).toBe(200);
    const refreshed = await request(app).post('/auth/refresh_token').set('authorization', `Bearer ${issued.body.refresh_token}`);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).not.toBe(issued.body.refresh_token);
    expect((await request(app).post('/auth/revoke_token').type('form').send({ token: refreshed.body.refresh_token })).status).toBe(200);
  });
});
