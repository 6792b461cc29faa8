import type { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type NinjaAuthOptions, RedisStore, type ReuseDetectedEvent } from '../../src/index.js';
import { asBytes, eventually, hostApp } from '../helpers/host.js';
import { type RedisServer, redisClient, startRedisServer, testRedis, uniquePrefix } from '../helpers/redis.js';
import { rawUpstream, type RotatingUpstream, rotatingUpstream } from '../helpers/servers.js';

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

async function instances(count: number, prefix: string, url = redis.url, extra: NinjaAuthOptions = {}, enableAutoPipelining = false) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = await redisClient(url, { enableAutoPipelining });
      clients.push(client);
      return hostApp({ upstream: { tokenUrl: upstream.url }, store: new RedisStore({ client, prefix }), ...extra });
    }),
  );
}

const refresh = (host: ReturnType<typeof hostApp>, token: string) =>
  request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).buffer(true).parse(asBytes);

/** A redis-server of the test's own (its command counts and settings are the test's alone), and a client on it. */
async function ownRedis(): Promise<{ client: Redis; stop: () => Promise<void> }> {
  const own = await startRedisServer();
  const client = await redisClient(own.url);
  clients.push(client);
  return {
    client,
    stop: async () => {
      client.disconnect();
      await own.stop();
    },
  };
}

describe('RedisStore across instances', () => {
  it.each([
    ['', false],
    [', with ioredis auto-pipelining (the commands of one event-loop turn in one write)', true],
  ])('concurrent refreshes of one token spread over three instances%s → one upstream call, identical bytes; the successor refreshes', async (_how, autoPipelining) => {
    upstream = await rotatingUpstream({ delayMs: 60 });
    const hosts = await instances(3, uniquePrefix(), redis.url, {}, autoPipelining);
    const token = upstream.login();
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => refresh(hosts[i % 3]!, token)));
    expect(upstream.calls()).toBe(1);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => r.body.toString('base64'))).size).toBe(1);
    const successor = JSON.parse(replies[0]!.body.toString()).refresh_token as string;
    const next = await refresh(hosts[1]!, successor);
    expect(next.status).toBe(200);
    expect(upstream.calls()).toBe(2);
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
  it('are sent by SHA-1 (EVALSHA); a server that lost them (SCRIPT FLUSH) gets the script once in full, then EVALSHA again', async () => {
    const { client, stop } = await ownRedis();
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
    // One script (the batch script, a single operation here), loaded once by EVAL after its first NOSCRIPT;
    // every other run by SHA-1.
    expect((await calls('eval')) - eval0).toBe(1);
    expect((await calls('evalsha')) - evalsha0).toBe(4);
    await stop();
  });

  it('a batch is one command (EVALSHA), and EVAL once more only when the server has not loaded the script', async () => {
    const { client, stop } = await ownRedis();
    const commands: string[] = [];
    const counting = { call: (command: string, ...args: Array<string | number>) => (commands.push(command), client.call(command, ...args)) };
    const store = new RedisStore({ client: counting, prefix: uniquePrefix() });
    const tag = 'f'.repeat(64);
    expect(await store.batch([['set', `reply:{${tag}}`, 'r', 5_000], ['get', `reply:{${tag}}`]])).toEqual([undefined, 'r']);
    expect(commands).toEqual(['EVALSHA', 'EVAL']);
    commands.length = 0;
    expect(await store.batch([['get', `reply:{${tag}}`], ['setIfAbsentOrGet', `lock:{${tag}}`, 'me', 5_000]])).toEqual(['r', true]);
    expect(commands).toEqual(['EVALSHA']);
    await stop();
  });
});

describe('RedisStore batch failures', () => {
  it('an operation that fails (a SET refused under maxmemory) does not keep the lock: the release still runs, and the batch fails', async () => {
    const { client, stop } = await ownRedis();
    const store = new RedisStore({ client, prefix: uniquePrefix() });
    const tag = 'a'.repeat(64);
    expect(await store.batch([['setIfAbsentOrGet', `lock:{${tag}}`, 'me', 5_000], ['get', `reply:{${tag}}`]])).toEqual([true, undefined]);
    await client.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await client.call('CONFIG', 'SET', 'maxmemory', '1');
    await expect(store.batch([['set', `reply:{${tag}}`, 'r', 5_000], ['deleteIfEquals', `lock:{${tag}}`, 'me']])).rejects.toThrow(/OOM/);
    await client.call('CONFIG', 'SET', 'maxmemory', '0');
    expect(await store.batch([['get', `lock:{${tag}}`], ['get', `reply:{${tag}}`]])).toEqual([undefined, undefined]);
    await stop();
  });
});

describe('RedisStore commands per refresh', () => {
  it('a refresh that reaches the upstream: one batch before the upstream call; after it one batch and the successor\'s link', async () => {
    const commands: string[] = [];
    let beforeUpstream: string[] | undefined;
    let issued = 0;
    const own = await rawUpstream((res) => {
      beforeUpstream ??= [...commands];
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ access_token: `at-${++issued}`, refresh_token: `rt-next-${issued}`, token_type: 'Bearer' }));
    });
    const client = await redisClient(redis.url);
    clients.push(client);
    let answered = 0;
    const counting = {
      call: async (command: string, ...args: Array<string | number>) => {
        commands.push(command);
        const reply = await client.call(command, ...args);
        answered++;
        return reply;
      },
    };
    const host = hostApp({ upstream: { tokenUrl: own.url }, store: new RedisStore({ client: counting, prefix: uniquePrefix() }) });
    const token = `rt-${Math.random().toString(36).slice(2)}`;
    const first = await refresh(host, token);
    // Once the store has answered all three, the request is settled and the next one is no longer in flight.
    await eventually(() => answered === 3);
    await own.close();
    expect(first.status).toBe(200);
    expect(beforeUpstream).toEqual(['EVALSHA']);
    expect([...commands].sort()).toEqual(['EVALSHA', 'EVALSHA', 'SET']);
    // A replay: one batch finds the reply (and takes the lock, released after the reply).
    commands.length = 0;
    const replay = await refresh(host, token);
    expect(replay.body.equals(first.body)).toBe(true);
    await eventually(() => answered === 5);
    expect(commands).toEqual(['EVALSHA', 'EVALSHA']);
  });
});
