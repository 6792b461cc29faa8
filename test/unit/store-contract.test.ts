import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore, type NinjaAuthStore, RedisStore } from '../../src/index.js';
import { type RedisServer, redisClient, testRedis, uniquePrefix } from '../helpers/redis.js';
import { sleep } from '../helpers/host.js';

// One contract, both stores: the Redis one against a real redis-server.
let redis: RedisServer;
let client: Redis;
beforeAll(async () => {
  redis = await testRedis();
  client = await redisClient(redis.url);
});
afterAll(async () => {
  client.disconnect();
  await redis.stop();
});

const stores: Array<[string, () => NinjaAuthStore]> = [
  ['MemoryStore', () => new MemoryStore()],
  ['RedisStore', () => new RedisStore({ client, prefix: uniquePrefix() })],
];

describe.each(stores)('%s', (_name, makeStore) => {
  it('get of a missing key is undefined; set then get returns the value', async () => {
    const store = makeStore();
    expect(await store.get('missing')).toBeUndefined();
    await store.set('k', 'v1', 10_000);
    expect(await store.get('k')).toBe('v1');
    await store.set('k', 'v2', 10_000);
    expect(await store.get('k')).toBe('v2');
  });

  it('entries expire after their ttl', async () => {
    const store = makeStore();
    await store.set('short', 'v', 30);
    expect(await store.get('short')).toBe('v');
    await sleep(80);
    expect(await store.get('short')).toBeUndefined();
  });

  it('setIfAbsent takes a free key once; a second caller is refused until it expires', async () => {
    const store = makeStore();
    expect(await store.setIfAbsent('lock', 'owner-a', 60)).toBe(true);
    expect(await store.setIfAbsent('lock', 'owner-b', 60)).toBe(false);
    expect(await store.get('lock')).toBe('owner-a');
    await sleep(100);
    expect(await store.setIfAbsent('lock', 'owner-b', 60)).toBe(true);
  });

  it('concurrent setIfAbsent: exactly one winner', async () => {
    const store = makeStore();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.setIfAbsent('race', `owner-${i}`, 5_000)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('deleteIfEquals releases only the owner’s lock', async () => {
    const store = makeStore();
    await store.set('lock', 'owner-a', 5_000);
    await store.deleteIfEquals('lock', 'owner-b');
    expect(await store.get('lock')).toBe('owner-a');
    await store.deleteIfEquals('lock', 'owner-a');
    expect(await store.get('lock')).toBeUndefined();
  });
});

describe('RedisStore specifics', () => {
  it('keys carry the prefix, and a TTL is set on every key', async () => {
    const prefix = uniquePrefix();
    const store = new RedisStore({ client, prefix });
    await store.set('a', '1', 5_000);
    await store.setIfAbsent('b', '2', 5_000);
    const keys = (await client.keys(`${prefix}*`)).sort();
    expect(keys).toEqual([`${prefix}a`, `${prefix}b`]);
    for (const key of keys) expect(await client.pttl(key)).toBeGreaterThan(0);
  });

  it('refuses a client that is not a Redis client', () => {
    expect(() => new RedisStore({ client: {} as never })).toThrow(/ioredis client/);
  });
});

describe('MemoryStore bound', () => {
  it('a flood of distinct keys cannot grow it past maxEntries; the newest survive', () => {
    const store = new MemoryStore({ maxEntries: 100 });
    for (let i = 0; i < 10_000; i++) store.set(`token-${i}`, 'x'.repeat(100), 60_000);
    expect(store.size).toBe(100);
    expect(store.get('token-9999')).toBe('x'.repeat(100));
    expect(store.get('token-0')).toBeUndefined();
    store.shutdown();
  });

  it('expired entries are swept even if never read again', async () => {
    const store = new MemoryStore({ sweepIntervalMs: 20 });
    for (let i = 0; i < 50; i++) store.set(`k${i}`, 'v', 10);
    await sleep(80);
    expect(store.size).toBe(0);
    store.shutdown();
  });
});
