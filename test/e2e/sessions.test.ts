import type { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NinjaAuthOptions, RedisStore, type ReuseDetectedEvent } from '../../src/index.js';
import { hostApp, sleep } from '../helpers/host.js';
import { type OidcUnderTest, oidcClient, startOidcProvider } from '../helpers/oidc.js';
import { type RedisServer, redisClient, testRedis, uniquePrefix } from '../helpers/redis.js';

// Sessions, not only calls: many simulated users refresh again and again against oidc-provider with strict
// rotation (a used refresh token revokes the whole grant). A session is lost when a refresh is refused.
const CLIENT_ID = 'sessions-app';
const CLIENT_SECRET = 'sessions-secret-7c1d';
const SESSIONS = 8;
const ROUNDS = 6;

let op: OidcUnderTest;
let redis: RedisServer;
const clients: Redis[] = [];
beforeAll(async () => {
  op = await startOidcProvider([oidcClient(CLIENT_ID, CLIENT_SECRET, 'client_secret_post')]);
  redis = await testRedis();
});
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await op.close();
  await redis.stop();
});

type Host = ReturnType<typeof hostApp>;

function router(extra: NinjaAuthOptions, reuses: ReuseDetectedEvent[]): Host {
  return hostApp({
    upstream: { tokenUrl: op.tokenUrl, revokeUrl: op.revokeUrl },
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    ...extra,
    hooks: { onReuseDetected: (e) => void reuses.push(e) },
  });
}

async function login(host: Host): Promise<string> {
  const { code, codeVerifier, redirectUri } = await op.authorize(CLIENT_ID);
  const res = await request(host).post('/auth/token').type('form').send({ grant_type: 'authorization_code', code, code_verifier: codeVerifier, redirect_uri: redirectUri });
  expect(res.status).toBe(200);
  return res.body.refresh_token as string;
}

async function refresh(host: Host, token: string): Promise<string | undefined> {
  const res = await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`);
  return res.status === 200 ? (res.body.refresh_token as string) : undefined;
}

const jitter = (maxMs: number): number => Math.floor(Math.random() * (maxMs + 1));

/** Two tabs share one storage: each round both wake with the same token and refresh a few ms apart. */
async function twoTabSession(pickHost: () => Host, secondTabDelayMs: () => number): Promise<boolean> {
  const storage = { token: await login(pickHost()) };
  for (let round = 0; round < ROUNDS; round++) {
    const read = storage.token;
    const tab = async (delayMs: number): Promise<boolean> => {
      await sleep(delayMs);
      const next = await refresh(pickHost(), read);
      if (next === undefined) return false;
      storage.token = next;
      return true;
    };
    const [first, second] = await Promise.all([tab(0), tab(secondTabDelayMs())]);
    if (!first || !second) return false;
  }
  return (await refresh(pickHost(), storage.token)) !== undefined;
}

/**
 * One client that loses a reply every round and retries with the token it still holds: either the reply was
 * sent but never arrived (`'dropped'`), or the client gave up while the refresh was in flight (`'aborted'`).
 */
async function retryingSession(host: Host, loss: 'dropped' | 'aborted'): Promise<boolean> {
  let token = await login(host);
  for (let round = 0; round < ROUNDS; round++) {
    const attempt = request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`);
    await (loss === 'aborted' ? attempt.timeout(3 + jitter(3)) : attempt).then(() => undefined, () => undefined);
    await sleep(jitter(15));
    const next = await refresh(host, token);
    if (next === undefined) return false;
    token = next;
  }
  return (await refresh(host, token)) !== undefined;
}

async function redisInstances(count: number, reuses: ReuseDetectedEvent[]): Promise<Host[]> {
  const prefix = uniquePrefix();
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = await redisClient(redis.url);
      clients.push(client);
      return router({ store: new RedisStore({ client, prefix }) }, reuses);
    }),
  );
}

const run = async (sessions: Array<() => Promise<boolean>>): Promise<number> => (await Promise.all(sessions.map((s) => s()))).filter((kept) => !kept).length;

describe('no session is lost with default settings', () => {
  it('two tabs sharing storage, refreshing 0–20 ms apart', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const host = router({}, reuses);
    const lost = await run(Array.from({ length: SESSIONS }, () => () => twoTabSession(() => host, () => jitter(20))));
    expect(lost).toBe(0);
    expect(reuses).toHaveLength(0);
  });

  it.each(['dropped', 'aborted'] as const)('clients whose reply is %s, and who retry', async (loss) => {
    const reuses: ReuseDetectedEvent[] = [];
    const host = router({}, reuses);
    const lost = await run(Array.from({ length: SESSIONS }, () => () => retryingSession(host, loss)));
    expect(lost).toBe(0);
    expect(reuses).toHaveLength(0);
  });

  it('two tabs spread over three instances sharing Redis', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const hosts = await redisInstances(3, reuses);
    const pick = () => hosts[jitter(2)]!;
    const lost = await run(Array.from({ length: SESSIONS }, () => () => twoTabSession(pick, () => jitter(20))));
    expect(lost).toBe(0);
    expect(reuses).toHaveLength(0);
  });
});

describe('the control: the same races without the replay window do lose sessions', () => {
  it('coalescing alone, the second tab 25 ms behind the first → every session lost', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const host = router({ reuseGraceMs: 0 }, reuses);
    const lost = await run(Array.from({ length: 4 }, () => () => twoTabSession(() => host, () => 25)));
    expect(lost).toBe(4);
    expect(reuses.length).toBeGreaterThanOrEqual(4);
  });

  it('a retry after a dropped reply, without the replay window → every session lost', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const host = router({ reuseGraceMs: 0 }, reuses);
    const lost = await run(Array.from({ length: 4 }, () => () => retryingSession(host, 'dropped')));
    expect(lost).toBe(4);
  });
});
