import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryStore, type NinjaAuthStore, RedisStore } from '../../src/index.js';
import { sealReply } from '../../src/rotation/reply-cipher.js';
import { tagged } from '../../src/stores/store-key.js';
import { answered } from '../../src/upstream.js';
import { type RedisServer, redisClient, testRedis, uniquePrefix } from '../helpers/redis.js';
import { clusterClient, type RedisCluster, testRedisCluster } from '../helpers/redis-cluster.js';
import { type RedisSentinel, sentinelClient, startRedisSentinel } from '../helpers/redis-sentinel.js';

// One contract, every store and topology: the Redis ones against real servers (single, Sentinel, Cluster).
let redis: RedisServer;
let client: Redis;
let cluster: RedisCluster;
let clusterRedis: Cluster;
let sentinel: RedisSentinel;
let viaSentinel: Redis;
let sentinelMaster: Redis;
beforeAll(async () => {
  [redis, cluster, sentinel] = await Promise.all([testRedis(), testRedisCluster(), startRedisSentinel()]);
  [client, clusterRedis, viaSentinel, sentinelMaster] = await Promise.all([
    redisClient(redis.url),
    clusterClient(cluster.nodes),
    sentinelClient(sentinel),
    redisClient(sentinel.master.url),
  ]);
}, 60_000);
afterAll(async () => {
  for (const c of [client, clusterRedis, viaSentinel, sentinelMaster]) c?.disconnect();
  await Promise.all([redis?.stop(), cluster?.stop(), sentinel?.stop()]);
});
afterEach(() => {
  vi.useRealTimers();
});

/** A store under test, and a way to move its clock: what `ms` of time does to its entries. */
interface StoreUnderTest {
  readonly store: NinjaAuthStore;
  advance(ms: number): Promise<void>;
}

/**
 * Time passing for a Redis store, without waiting for it: every key under the prefix loses `ms` of its time to
 * live, and the ones with none left go. What is tested is that the store gave each key the right TTL, which is
 * what makes Redis expire it.
 */
async function rewindTtls(nodes: readonly Redis[], prefix: string, ms: number): Promise<void> {
  for (const node of nodes) {
    for (const key of await node.keys(`${prefix}*`)) {
      const left = await node.pttl(key);
      if (left < 0) continue;
      if (left - ms <= 0) await node.del(key);
      else await node.pexpire(key, left - ms);
    }
  }
}

function memoryStore(): StoreUnderTest {
  let clock = 1_000_000;
  return { store: new MemoryStore({ now: () => clock }), advance: async (ms) => void (clock += ms) };
}

function redisStore(redisClientOf: () => Redis | Cluster, nodesOf: () => readonly Redis[]): () => StoreUnderTest {
  return () => {
    const prefix = uniquePrefix();
    return { store: new RedisStore({ client: redisClientOf(), prefix }), advance: (ms) => rewindTtls(nodesOf(), prefix, ms) };
  };
}

const stores: Array<[string, () => StoreUnderTest]> = [
  ['MemoryStore', memoryStore],
  ['RedisStore', redisStore(() => client, () => [client])],
  ['RedisStore on Redis Sentinel', redisStore(() => viaSentinel, () => [sentinelMaster])],
  ['RedisStore on a Redis Cluster', redisStore(() => clusterRedis, () => clusterRedis.nodes('master'))],
];

describe.each(stores)('%s', (_name, makeStore) => {
  it('get of a missing key is undefined; set then get returns the value', async () => {
    const { store } = makeStore();
    expect(await store.get('missing')).toBeUndefined();
    await store.set('k', 'v1', 10_000);
    expect(await store.get('k')).toBe('v1');
    await store.set('k', 'v2', 10_000);
    expect(await store.get('k')).toBe('v2');
  });

  it('entries expire after their ttl, not before', async () => {
    const { store, advance } = makeStore();
    await store.set('short', 'v', 10_000);
    await advance(9_000);
    expect(await store.get('short')).toBe('v');
    await advance(1_000);
    expect(await store.get('short')).toBeUndefined();
  });

  it('a set replaces the ttl along with the value', async () => {
    const { store, advance } = makeStore();
    await store.set('k', 'v1', 2_000);
    await store.set('k', 'v2', 10_000);
    await advance(5_000);
    expect(await store.get('k')).toBe('v2');
  });

  it('setIfAbsent takes a free key once; a second caller is refused until it expires', async () => {
    const { store, advance } = makeStore();
    expect(await store.setIfAbsent('lock', 'owner-a', 5_000)).toBe(true);
    expect(await store.setIfAbsent('lock', 'owner-b', 5_000)).toBe(false);
    expect(await store.get('lock')).toBe('owner-a');
    await advance(4_000);
    expect(await store.setIfAbsent('lock', 'owner-b', 5_000)).toBe(false);
    await advance(1_000);
    expect(await store.setIfAbsent('lock', 'owner-b', 5_000)).toBe(true);
    expect(await store.get('lock')).toBe('owner-b');
  });

  it('setIfAbsentOrGet takes a free key, or tells what holds it, and expires like setIfAbsent', async () => {
    const { store, advance } = makeStore();
    expect(await store.setIfAbsentOrGet?.('lock', 'owner-a', 5_000)).toBe(true);
    expect(await store.setIfAbsentOrGet?.('lock', 'owner-b', 5_000)).toBe('owner-a');
    expect(await store.get('lock')).toBe('owner-a');
    await advance(5_000);
    expect(await store.setIfAbsentOrGet?.('lock', 'owner-b', 5_000)).toBe(true);
    const racers = await Promise.all(Array.from({ length: 10 }, (_, i) => store.setIfAbsentOrGet?.('race', `owner-${i}`, 5_000)));
    expect(racers.filter((r) => r === true)).toHaveLength(1);
    expect(new Set(racers.filter((r) => r !== true)).size).toBe(1);
  });

  it('concurrent setIfAbsent: exactly one winner', async () => {
    const { store } = makeStore();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.setIfAbsent('race', `owner-${i}`, 5_000)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('deleteIfEquals releases only the owner’s lock', async () => {
    const { store } = makeStore();
    await store.set('lock', 'owner-a', 5_000);
    await store.deleteIfEquals('lock', 'owner-b');
    expect(await store.get('lock')).toBe('owner-a');
    await store.deleteIfEquals('lock', 'owner-a');
    expect(await store.get('lock')).toBeUndefined();
  });

  it('every value comes back exactly as it was stored, base64url or not', async () => {
    const { store } = makeStore();
    const reply = sealReply(answered(200, { 'content-type': 'application/json' }, Buffer.from(`{"refresh_token":"rt-next","id_token":"${'e'.repeat(900)}"}`)), 'rt-presented', 'request-key');
    const values = [
      reply,
      randomBytes(400).toString('base64url'),
      `${randomBytes(150).toString('base64url')}+/==`,
      `${'A'.repeat(200)}B`,
      `v2.${'ab'.repeat(32)}`,
      `é\u00ff.${randomBytes(200).toString('base64url')}`,
      `☃.${randomBytes(200).toString('base64url')}`,
      '1796148207237',
      '',
    ];
    for (const [i, value] of values.entries()) await store.set(`value-${i}`, value, 5_000);
    for (const [i, value] of values.entries()) expect(await store.get(`value-${i}`)).toBe(value);
    expect(await store.setIfAbsentOrGet?.('value-0', 'other', 5_000)).toBe(reply);
    await store.deleteIfEquals('value-0', reply.slice(0, -1));
    expect(await store.get('value-0')).toBe(reply);
    await store.deleteIfEquals('value-0', reply);
    expect(await store.get('value-0')).toBeUndefined();
  });

  it('keys with a {hash tag}, as the guard writes them, work like any other', async () => {
    const { store } = makeStore();
    const tag = 'a'.repeat(64);
    await store.set(`reply:{${tag}}:${'b'.repeat(64)}`, 'r', 5_000);
    expect(await store.setIfAbsent(`lock:{${tag}}:${'b'.repeat(64)}`, 'me', 5_000)).toBe(true);
    expect(await store.get(`reply:{${tag}}:${'b'.repeat(64)}`)).toBe('r');
    await store.deleteIfEquals(`lock:{${tag}}:${'b'.repeat(64)}`, 'me');
    expect(await store.get(`lock:{${tag}}:${'b'.repeat(64)}`)).toBeUndefined();
  });

  it('getMany answers as get would, in order, for keys of one hash tag', async () => {
    const { store } = makeStore();
    const tag = 'c'.repeat(64);
    await store.set(`reply:{${tag}}:x`, 'first', 5_000);
    await store.set(`rotated:{${tag}}`, 'second', 5_000);
    expect(await store.getMany!([`reply:{${tag}}:x`, `sealed:{${tag}}`, `rotated:{${tag}}`])).toEqual(['first', undefined, 'second']);
  });
});

const batchingStores = stores.filter(([name]) => name.startsWith('RedisStore'));

describe.each(batchingStores)('%s batch', (_name, makeStore) => {
  it('answers, in order, what each method would have answered on its own, and sees its own earlier operations', async () => {
    const { store } = makeStore();
    const tag = 'd'.repeat(64);
    await store.set(`rotated:{${tag}}`, 'before', 5_000);
    expect(
      await store.batch!([
        ['setIfAbsentOrGet', `lock:{${tag}}`, 'me', 5_000],
        ['setIfAbsentOrGet', `lock:{${tag}}`, 'you', 5_000],
        ['get', `rotated:{${tag}}`],
        ['get', `reply:{${tag}}`],
        ['set', `reply:{${tag}}`, 'r', 5_000],
        ['get', `reply:{${tag}}`],
        ['deleteIfEquals', `lock:{${tag}}`, 'you'],
        ['get', `lock:{${tag}}`],
        ['deleteIfEquals', `lock:{${tag}}`, 'me'],
        ['get', `lock:{${tag}}`],
      ]),
    ).toEqual([true, 'me', 'before', undefined, undefined, 'r', undefined, 'me', undefined, undefined]);
    expect(await store.get(`reply:{${tag}}`)).toBe('r');
    expect(await store.get(`lock:{${tag}}`)).toBeUndefined();
    expect(await store.batch!([])).toEqual([]);
  });

  it('gives what it sets, and the locks it takes, their time to live', async () => {
    const { store, advance } = makeStore();
    const tag = 'e'.repeat(64);
    await store.batch!([['set', `reply:{${tag}}`, 'r', 3_000], ['setIfAbsentOrGet', `lock:{${tag}}`, 'me', 1_000]]);
    await advance(1_000);
    expect(await store.batch!([['get', `reply:{${tag}}`], ['get', `lock:{${tag}}`]])).toEqual(['r', undefined]);
    await advance(2_000);
    expect(await store.get(`reply:{${tag}}`)).toBeUndefined();
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

  it('the prefix defaults to ninja-auth:', async () => {
    const store = new RedisStore({ client });
    const key = `contract-default-prefix-${Math.random().toString(36).slice(2)}`;
    await store.set(key, '1', 5_000);
    expect(await client.get(`ninja-auth:${key}`)).toBe('1');
    await client.del(`ninja-auth:${key}`);
  });

  it('on a Cluster, the keys of one hash tag share a slot, and different tags spread over the masters', async () => {
    const prefix = uniquePrefix();
    const store = new RedisStore({ client: clusterRedis, prefix });
    const tags = Array.from({ length: 12 }, (_, i) => `${i}`.padStart(64, '0'));
    for (const tag of tags) {
      await store.set(`reply:{${tag}}:x`, 'r', 5_000);
      await store.set(`sealed:{${tag}}`, '1', 5_000);
    }
    for (const tag of tags) {
      const [a, b] = await Promise.all([clusterRedis.cluster('KEYSLOT', `${prefix}reply:{${tag}}:x`), clusterRedis.cluster('KEYSLOT', `${prefix}sealed:{${tag}}`)]);
      expect(a).toBe(b);
    }
    const perMaster = await Promise.all(clusterRedis.nodes('master').map((node) => node.keys(`${prefix}*`)));
    expect(perMaster.filter((keys) => keys.length > 0).length).toBeGreaterThan(1);
  });

  it('refuses a client that is not a Redis client, and a prefix that is not a string', () => {
    expect(() => new RedisStore({ client: {} as never })).toThrow(/ioredis client/);
    expect(() => new RedisStore({ client, prefix: 5 as never })).toThrow(/prefix must be a string/);
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

  it('large values held outside the heap come back exact after their buffers were used again many times', () => {
    // A thousand of 1.4 KB: what is held spans two of the log's 1 MiB buffers at a time.
    const store = new MemoryStore({ maxEntries: 1_000 });
    const values = Array.from({ length: 5_000 }, () => randomBytes(1_400));
    values.forEach((bytes, i) => store.setBytes(`reply:{t${i}}:r`, `v2.${i}.`, bytes, 60_000));
    expect(store.size).toBe(1_000);
    for (let i = 4_000; i < 5_000; i++) expect(store.get(`reply:{t${i}}:r`)).toBe(`v2.${i}.${values[i]!.toString('base64url')}`);
    expect(store.get('reply:{t0}:r')).toBeUndefined();
    // A head beyond latin1 stays a string beside the bytes.
    store.setBytes('reply:{é}:r', 'v2.é.', values[0]!, 60_000);
    expect(store.get('reply:{é}:r')).toBe(`v2.é.${values[0]!.toString('base64url')}`);
    store.shutdown();
  });

  it('the entries of one hash tag go together, when that tag was written to the longest ago', () => {
    const store = new MemoryStore({ maxEntries: 4 });
    store.set('a:{t1}', '1', 60_000);
    store.set('b:{t1}', '1', 60_000);
    store.set('x:{t2}', '2', 60_000);
    // t1 written to again: now the newest, so t2 is the oldest.
    store.set('c:{t1}', '1', 60_000);
    store.set('y:{t3}', '3', 60_000);
    expect(store.size).toBe(4);
    expect(store.get('x:{t2}')).toBeUndefined();
    expect(['a:{t1}', 'b:{t1}', 'c:{t1}', 'y:{t3}'].map((key) => store.get(key))).toEqual(['1', '1', '1', '3']);
    // Past the bound again: all three of t1 go, the oldest tag now.
    store.set('z:{t4}', '4', 60_000);
    expect(store.size).toBe(2);
    expect(['a:{t1}', 'b:{t1}', 'c:{t1}', 'y:{t3}', 'z:{t4}'].map((key) => store.get(key))).toEqual([undefined, undefined, undefined, '3', '4']);
    store.shutdown();
  });

  it('what the guard writes as a tag and the rest is what the key as text reads, and the other way round', () => {
    const store = new MemoryStore();
    store.write(tagged('t', 'reply:{}:r'), 'sealed reply', 60_000);
    store.set('sealed:{t}', '1', 60_000);
    store.set('t', 'a key without a tag, named as the tag', 60_000);
    expect(store.get('reply:{t}:r')).toBe('sealed reply');
    expect(store.read(tagged('t', 'sealed:{}'))).toBe('1');
    expect(store.get('t')).toBe('a key without a tag, named as the tag');
    expect(store.read(tagged('t', 'rotated:{}'))).toBeUndefined();
    store.deleteIfEquals('reply:{t}:r', 'sealed reply');
    expect(store.read(tagged('t', 'reply:{}:r'))).toBeUndefined();
    expect(store.size).toBe(2);
    store.shutdown();
  });

  it('a flood of large values cannot grow it past maxBytes; the newest survive, and a value larger than the bound is not kept', () => {
    const store = new MemoryStore({ maxBytes: 100_000 });
    // Not base64url, so held as it is: 1,004 characters each.
    const value = (i: number): string => `${String(i).padStart(4, '0')}${'~'.repeat(1_000)}`;
    for (let i = 0; i < 1_000; i++) store.set(`token-${i}`, value(i), 60_000);
    expect(store.bytes).toBeLessThanOrEqual(100_000);
    expect(store.bytes).toBeGreaterThan(100_000 - 1_200);
    expect(store.size).toBe(Math.floor(100_000 / (1_004 + 'token-999'.length + 120)));
    expect(store.get('token-999')).toBe(value(999));
    expect(store.get('token-0')).toBeUndefined();
    store.set('huge', 'y'.repeat(200_000), 60_000);
    expect(store.get('huge')).toBeUndefined();
    expect(store.size).toBe(0);
    expect(store.bytes).toBe(0);
    store.shutdown();
  });

  it('counts base64url values by their bytes, and gives back what replaced, expired or deleted entries counted', () => {
    let clock = 0;
    const store = new MemoryStore({ now: () => clock });
    const sealedLike = `v2.${randomBytes(12).toString('base64url')}.${randomBytes(1_500).toString('base64url')}`;
    store.set('reply', sealedLike, 100);
    const head = sealedLike.lastIndexOf('.') + 1;
    expect(store.bytes).toBe('reply'.length + head + 1_500 + 120);
    store.set('reply', 'short', 100);
    expect(store.bytes).toBe('reply'.length + 'short'.length + 120);
    store.set('lock', 'owner', 50);
    store.deleteIfEquals('lock', 'owner');
    expect(store.bytes).toBe('reply'.length + 'short'.length + 120);
    clock = 100;
    expect(store.get('reply')).toBeUndefined();
    expect(store.bytes).toBe(0);
    store.set('a', 'v', 10);
    store.shutdown();
    expect(store.bytes).toBe(0);
  });

  it('setBytes: get returns the head and the bytes in base64url, exactly what set would have stored', () => {
    const store = new MemoryStore();
    const bytes = randomBytes(1_390);
    store.setBytes('reply', 'v2.iv.tag.', bytes, 5_000);
    expect(store.get('reply')).toBe(`v2.iv.tag.${bytes.toString('base64url')}`);
    expect(store.bytes).toBe('reply'.length + 'v2.iv.tag.'.length + 1_390 + 120);
    store.deleteIfEquals('reply', `v2.iv.tag.${bytes.toString('base64url')}`);
    expect(store.size).toBe(0);
    store.shutdown();
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '100'])('refuses a maxBytes of %s', (value) => {
    expect(() => new MemoryStore({ maxBytes: value as never })).toThrow(/maxBytes must be a positive whole number/);
  });

  it('expired entries are swept even if never read again', () => {
    vi.useFakeTimers();
    const store = new MemoryStore({ sweepIntervalMs: 1_000 });
    for (let i = 0; i < 50; i++) store.set(`k${i}`, 'v', 500);
    store.set('long', 'v', 5_000);
    vi.advanceTimersByTime(999);
    expect(store.size).toBe(51);
    vi.advanceTimersByTime(1);
    expect(store.size).toBe(1);
    store.shutdown();
  });

  it('an injected clock decides expiry; a now that is not a function is refused', () => {
    let clock = 0;
    const store = new MemoryStore({ now: () => clock });
    store.set('k', 'v', 100);
    clock = 99;
    expect(store.get('k')).toBe('v');
    clock = 100;
    expect(store.get('k')).toBeUndefined();
    store.shutdown();
    expect(() => new MemoryStore({ now: 5 as never })).toThrow(/now must be a function/);
  });

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '100'])('refuses a sweepIntervalMs of %s, which would sweep without pause or never', (value) => {
    expect(() => new MemoryStore({ sweepIntervalMs: value as never })).toThrow(/sweepIntervalMs must be a number/);
  });
});
