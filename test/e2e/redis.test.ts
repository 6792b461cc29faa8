import type { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type NinjaAuthOptions, RedisStore, type ReuseDetectedEvent } from '../../src/index.js';
import { asBytes, eventually, hostApp } from '../helpers/host.js';
import { type RedisServer, redisClient, startRedisServer, testRedis, uniquePrefix } from '../helpers/redis.js';
import { type RotatingUpstream, rotatingUpstream } from '../helpers/servers.js';

// Several instances in one process, each with its own Redis client: what holds across hosts holds here.
let redis: RedisServer;
const clients: Redis[] = [];
let upstream: RotatingUpstream;
beforeAll(async () => {
  redis = await testRedis();
});
afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await upstream?.close();
});
afterAll(async () => {
  await redis.stop();
});

async function instances(count: number, prefix: string, url = redis.url, extra: NinjaAuthOptions = {}) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = await redisClient(url);
      clients.push(client);
      return hostApp({ upstream: { tokenUrl: upstream.url }, store: new RedisStore({ client, prefix }), ...extra });
    }),
  );
}

const refresh = (host: ReturnType<typeof hostApp>, token: string) =>
  request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).buffer(true).parse(asBytes);

describe('RedisStore across instances', () => {
  it('concurrent refreshes of one token spread over three instances → one upstream call, identical bytes', async () => {
    upstream = await rotatingUpstream({ delayMs: 60 });
    const hosts = await instances(3, uniquePrefix());
    const token = upstream.login();
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => refresh(hosts[i % 3]!, token)));
    expect(upstream.calls()).toBe(1);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => r.body.toString('base64'))).size).toBe(1);
  });

  it('a retry that lands on another instance gets the stored reply', async () => {
    upstream = await rotatingUpstream();
    const [a, b] = await instances(2, uniquePrefix());
    const token = upstream.login();
    const first = await refresh(a!, token);
    const retry = await refresh(b!, token);
    expect(upstream.calls()).toBe(1);
    expect(retry.body.equals(first.body)).toBe(true);
  });

  it('after a run, the keyspace holds no token in the clear, and every key expires', async () => {
    upstream = await rotatingUpstream();
    const prefix = uniquePrefix();
    const [a, b] = await instances(2, prefix);
    const seenTokens: string[] = [];
    let token = upstream.login();
    for (let i = 0; i < 5; i++) {
      seenTokens.push(token);
      const reply = await refresh(i % 2 === 0 ? a! : b!, token);
      const body = JSON.parse(reply.body.toString());
      seenTokens.push(body.access_token);
      await refresh(i % 2 === 0 ? b! : a!, token);
      token = body.refresh_token;
    }
    const scan = clients[0]!;
    const keys = await scan.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    const dump = [];
    for (const key of keys) {
      dump.push(key, (await scan.get(key)) ?? '');
      expect(await scan.pttl(key)).toBeGreaterThan(0);
    }
    const everything = dump.join('\n');
    for (const secret of seenTokens) expect(everything).not.toContain(secret);
    expect(keys.every((k) => /^[\w:-]+:\{[0-9a-f]{64}\}(:[0-9a-f]{64})?$/.test(k))).toBe(true);
  });

  it('successorPresented holds across instances: the successor used on one, the old token seen on another', async () => {
    upstream = await rotatingUpstream();
    const prefix = uniquePrefix();
    const reuses: ReuseDetectedEvent[] = [];
    const [a, b] = await instances(2, prefix, redis.url, { hooks: { onReuseDetected: (e) => void reuses.push(e) } });
    const token = upstream.login();
    const successor = JSON.parse((await refresh(a!, token)).body.toString()).refresh_token as string;
    expect((await refresh(b!, successor)).status).toBe(200);
    expect((await refresh(a!, token)).status).toBe(400);
    await eventually(() => reuses.length === 1);
    expect(reuses[0]!.successorPresented).toBe(true);
  });
});

describe('RedisStore scripts', () => {
  it('are sent by SHA-1 (EVALSHA); a server that lost them (SCRIPT FLUSH) gets each once in full, then EVALSHA again', async () => {
    // A server of this test's own: its command counts are this test's alone.
    const own = await startRedisServer();
    const client = await redisClient(own.url);
    clients.push(client);
    const store = new RedisStore({ client, prefix: uniquePrefix() });
    const calls = async (command: string): Promise<number> => {
      const stats = String(await client.call('INFO', 'commandstats'));
      return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
    };
    await client.call('SCRIPT', 'FLUSH');
    const [eval0, evalsha0] = [await calls('eval'), await calls('evalsha')];
    expect(await store.setIfAbsentOrGet('lock-a', 'owner-1', 1000)).toBe(true);
    expect(await store.setIfAbsentOrGet('lock-a', 'owner-2', 1000)).toBe('owner-1');
    await store.deleteIfEquals('lock-a', 'owner-2');
    expect(await store.get('lock-a')).toBe('owner-1');
    await store.deleteIfEquals('lock-a', 'owner-1');
    expect(await store.get('lock-a')).toBeUndefined();
    // Two scripts, each loaded once by EVAL after its first NOSCRIPT; every other run by SHA-1.
    expect((await calls('eval')) - eval0).toBe(2);
    expect((await calls('evalsha')) - evalsha0).toBe(4);
    client.disconnect();
    await own.stop();
  });
});
