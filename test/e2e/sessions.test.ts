import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NinjaAuthOptions, RedisStore, type ReuseDetectedEvent } from '../../src/index.js';
import { hostApp, sleep } from '../helpers/host.js';
import { type OidcUnderTest, oidcClient, startOidcProvider } from '../helpers/oidc.js';
import { type RedisServer, redisClient, testRedis, uniquePrefix } from '../helpers/redis.js';
import { type Listening, listen } from '../helpers/servers.js';

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
 * Two tabs that read the same token: the second refreshes only once the first has its reply, so the two are never
 * in flight together and coalescing cannot help; only the replay window can.
 */
async function tabsOneAfterTheOther(host: Host): Promise<boolean> {
  let token = await login(host);
  for (let round = 0; round < ROUNDS; round++) {
    const first = await refresh(host, token);
    const second = await refresh(host, token);
    if (first === undefined || second === undefined) return false;
    token = second;
  }
  return (await refresh(host, token)) !== undefined;
}

/** One client whose reply is sent but never arrives, every round, and who retries with the token it still holds. */
async function retryingSession(host: Host): Promise<boolean> {
  let token = await login(host);
  for (let round = 0; round < ROUNDS; round++) {
    await refresh(host, token);
    const next = await refresh(host, token);
    if (next === undefined) return false;
    token = next;
  }
  return (await refresh(host, token)) !== undefined;
}

/**
 * Between the router and the provider: passes each token request on, and once the provider has answered (the
 * token is rotated there) holds the answer until the test lets it go, so a client can give up at exactly that point.
 */
interface Gate extends Listening {
  readonly tokenUrl: string;
  /** Resolves when the provider has answered the next request; `release` lets that answer go to the router. */
  answered(): Promise<{ release: () => void; delivered: Promise<void> }>;
}

async function gate(target: string): Promise<Gate> {
  const waiting: Array<(held: { release: () => void; delivered: Promise<void> }) => void> = [];
  const listening = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const forwarded = http.request(target, { method: 'POST', headers: { ...req.headers, host: new URL(target).host } }, (answer) => {
        const body: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => body.push(chunk));
        answer.on('end', () => {
          let delivered!: () => void;
          const done = new Promise<void>((resolve) => {
            delivered = resolve;
          });
          const release = (): void => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(Buffer.concat(body), () => delivered());
          };
          const next = waiting.shift();
          if (next === undefined) release();
          else next({ release, delivered: done });
        });
      });
      forwarded.end(Buffer.concat(chunks));
    });
  });
  return {
    ...listening,
    tokenUrl: `${listening.origin}/token`,
    answered: () => new Promise((resolve) => waiting.push(resolve)),
  };
}

/** A client that gives up on its refresh after the provider rotated the token, before the reply reached it. */
async function abandonedRefresh(port: number, token: string, through: Gate): Promise<boolean> {
  const held = through.answered();
  let gotReply = false;
  const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/auth/refresh_token', headers: { authorization: `Bearer ${token}` } }, () => {
    gotReply = true;
  });
  req.on('error', () => undefined);
  req.end();
  const { release, delivered } = await held;
  req.destroy();
  release();
  await delivered;
  return !gotReply;
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

  it('two tabs, the second starting once the first has its reply (never coalesced)', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const host = router({}, reuses);
    const lost = await run(Array.from({ length: SESSIONS }, () => () => tabsOneAfterTheOther(host)));
    expect(lost).toBe(0);
    expect(reuses).toHaveLength(0);
  });

  it('clients whose reply is dropped, and who retry', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const host = router({}, reuses);
    const lost = await run(Array.from({ length: SESSIONS }, () => () => retryingSession(host)));
    expect(lost).toBe(0);
    expect(reuses).toHaveLength(0);
  });

  it('a client that gives up after the provider rotated, and retries: the retry gets the rotated reply', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const through = await gate(op.tokenUrl);
    const host = router({ upstream: { tokenUrl: through.tokenUrl, revokeUrl: op.revokeUrl } }, reuses);
    const server = http.createServer(host).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      let token = await login(host);
      for (let round = 0; round < ROUNDS; round++) {
        const callsBefore = op.tokenCalls();
        expect(await abandonedRefresh((server.address() as AddressInfo).port, token, through)).toBe(true);
        expect(op.tokenCalls()).toBe(callsBefore + 1);
        // The reply the client never saw reached the router: the retry is answered from the guard, not upstream.
        const next = await refresh(host, token);
        expect(next).toBeDefined();
        expect(op.tokenCalls()).toBe(callsBefore + 1);
        token = next!;
      }
      expect(await refresh(host, token)).toBeDefined();
      expect(reuses).toHaveLength(0);
    } finally {
      server.closeAllConnections();
      server.close();
      await through.close();
    }
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
  it('coalescing alone, the second tab starting once the first has its reply → every session lost', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const host = router({ reuseGraceMs: 0 }, reuses);
    const lost = await run(Array.from({ length: 4 }, () => () => tabsOneAfterTheOther(host)));
    expect(lost).toBe(4);
    expect(reuses.length).toBeGreaterThanOrEqual(4);
  });

  it('a retry after a dropped reply, without the replay window → every session lost', async () => {
    const reuses: ReuseDetectedEvent[] = [];
    const host = router({ reuseGraceMs: 0 }, reuses);
    const lost = await run(Array.from({ length: 4 }, () => () => retryingSession(host)));
    expect(lost).toBe(4);
  });
});
