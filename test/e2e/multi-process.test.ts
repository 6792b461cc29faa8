import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InstanceProcess, startInstance } from '../helpers/instances.js';
import { type RedisServer, startRedisServer, testRedis, uniquePrefix } from '../helpers/redis.js';
import { type RawUpstream, rawUpstream, type RotatingUpstream, rotatingUpstream } from '../helpers/servers.js';

// Three Node processes, each with the router and a RedisStore, in front of one rotating upstream.
let redis: RedisServer;
let upstream: RotatingUpstream;
let instances: InstanceProcess[];
beforeAll(async () => {
  redis = await testRedis();
  upstream = await rotatingUpstream({ delayMs: 50 });
  const prefix = uniquePrefix();
  instances = await Promise.all([0, 1, 2].map(() => startInstance(upstream.url, redis.url, prefix)));
});
afterAll(async () => {
  await Promise.all(instances.map((i) => i.stop()));
  await upstream.close();
  await redis.stop();
});

async function refresh(origin: string, token: string): Promise<{ status: number; body: Buffer; retryAfter: string | null }> {
  const res = await fetch(`${origin}/auth/refresh_token`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), retryAfter: res.headers.get('retry-after') };
}

describe('several processes sharing Redis', () => {
  it('30 concurrent refreshes of one token across three processes → one upstream call, 30 identical bodies', async () => {
    const token = upstream.login();
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => refresh(instances[i % 3]!.origin, token)));
    expect(upstream.calls()).toBe(1);
    expect(replies.map((r) => r.status)).toEqual(Array(30).fill(200));
    expect(new Set(replies.map((r) => r.body.toString('base64'))).size).toBe(1);
    expect(JSON.parse(replies[0]!.body.toString()).refresh_token).not.toBe(token);
  });

  it('the chain goes on: the successor refreshes on any process, and the old token is never replayed after it', async () => {
    const token = upstream.login();
    const callsBefore = upstream.calls();
    const first = await refresh(instances[0]!.origin, token);
    const successor = JSON.parse(first.body.toString()).refresh_token as string;
    const next = await refresh(instances[1]!.origin, successor);
    expect(next.status).toBe(200);
    const stale = await refresh(instances[2]!.origin, token);
    expect(stale.status).toBe(400);
    expect(upstream.calls() - callsBefore).toBe(3);
  });
});

describe('several processes sharing Redis, in front of a provider that throttles', () => {
  // A provider answering 429 with Retry-After, and numbering its answers so that two are told apart. Its first
  // answer waits until every refresh the test sent has reached its process (one that came after the answer would
  // be a new request, and a non-2xx is shared only while it is in flight) and all three processes have tried the
  // lock (each one's first store command is its lock attempt).
  let throttling: RawUpstream;
  let throttled: InstanceProcess[];
  let ownRedis: RedisServer;
  let gate: Promise<void> | undefined;
  beforeAll(async () => {
    ownRedis = await startRedisServer();
    const allThere = async (): Promise<void> => {
      for (let polls = 0; polls < 500; polls++) {
        const seen = await Promise.all(throttled.map((instance) => instance.arrived()));
        if (seen.every((one) => one.storeCommands > 0) && seen.reduce((sum, one) => sum + one.refreshes, 0) >= 30) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    throttling = await rawUpstream((res) => {
      const call = throttling.requests.length;
      gate ??= allThere();
      void gate.then(() => {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
        res.end(`{"error":"slow_down","call":${call}}`);
      });
    });
    const prefix = uniquePrefix();
    throttled = await Promise.all([0, 1, 2].map(() => startInstance(throttling.url, ownRedis.url, prefix)));
  });
  afterAll(async () => {
    await Promise.all(throttled.map((i) => i.stop()));
    await throttling.close();
    await ownRedis.stop();
  });

  it('a 429 is not asked for once per waiting instance: every caller of the request in flight gets the one answer, Retry-After included', async () => {
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => refresh(throttled[i % 3]!.origin, 'rt-throttled')));
    expect(throttling.requests).toHaveLength(1);
    expect(replies.map((r) => r.status)).toEqual(Array(30).fill(429));
    expect(replies.map((r) => r.retryAfter)).toEqual(Array(30).fill('7'));
    expect(new Set(replies.map((r) => r.body.toString()))).toEqual(new Set(['{"error":"slow_down","call":1}']));
  });

  it('the answer is the lock’s only: the same request after it goes upstream again, never replayed', async () => {
    const before = throttling.requests.length;
    const first = await refresh(throttled[0]!.origin, 'rt-throttled-again');
    const later = await refresh(throttled[1]!.origin, 'rt-throttled-again');
    expect(throttling.requests.length - before).toBe(2);
    expect(later.body.equals(first.body)).toBe(false);
    expect(later.status).toBe(429);
  });
});
