import type { Cluster, Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/index.js';
import { asBytes, hostApp } from '../helpers/host.js';
import { uniquePrefix } from '../helpers/redis.js';
import { clusterClient, clusterKeys, type RedisCluster, testRedisCluster } from '../helpers/redis-cluster.js';
import { type RedisSentinel, sentinelClient, startRedisSentinel } from '../helpers/redis-sentinel.js';
import { rawUpstream, type RotatingUpstream, rotatingUpstream } from '../helpers/servers.js';

// Several instances in one process, each with its own client, over a Redis Cluster and over Redis Sentinel.
let upstream: RotatingUpstream | undefined;
const clients: Array<Redis | Cluster> = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await upstream?.close();
  upstream = undefined;
});

const refresh = (host: ReturnType<typeof hostApp>, token: string) =>
  request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).buffer(true).parse(asBytes);

describe('RedisStore on a three-master Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await testRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  async function instances(count: number, tokenUrl: string, prefix: string) {
    return Promise.all(
      Array.from({ length: count }, async () => {
        const client = await clusterClient(cluster.nodes);
        clients.push(client);
        return hostApp({ upstream: { tokenUrl }, store: new RedisStore({ client, prefix }) });
      }),
    );
  }

  it('concurrent refreshes of one token over three instances → one upstream call, identical bytes', async () => {
    upstream = await rotatingUpstream({ delayMs: 60 });
    const hosts = await instances(3, upstream.url, uniquePrefix());
    const token = upstream.login();
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => refresh(hosts[i % 3]!, token)));
    expect(upstream.calls()).toBe(1);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => r.body.toString('base64'))).size).toBe(1);
  });

  it('a retry that lands on the other instance gets the stored reply; the chain goes on; the old token is not replayed after it', async () => {
    upstream = await rotatingUpstream();
    const [a, b] = await instances(2, upstream.url, uniquePrefix());
    const token = upstream.login();
    const first = await refresh(a!, token);
    const retry = await refresh(b!, token);
    expect(upstream.calls()).toBe(1);
    expect(retry.body.equals(first.body)).toBe(true);
    const successor = JSON.parse(first.body.toString()).refresh_token as string;
    expect((await refresh(b!, successor)).status).toBe(200);
    expect((await refresh(a!, token)).status).toBe(400);
    expect(upstream.calls()).toBe(3);
  });

  it('a non-2xx is asked for once, and every waiting instance’s caller gets it', async () => {
    // The upstream answers once both other instances have been refused the lock: all three are in flight.
    let refusals = 0;
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const busy = await rawUpstream((res) => {
      const call = busy.requests.length;
      void gate.then(() => {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '3' });
        res.end(`{"error":"temporarily_unavailable","call":${call}}`);
      });
    });
    try {
      const prefix = uniquePrefix();
      const hosts = await Promise.all(
        [0, 1, 2].map(async () => {
          const client = await clusterClient(cluster.nodes);
          clients.push(client);
          const store = new RedisStore({ client, prefix });
          // The lock is taken in the first batch of a refresh, with the reads.
          const batch = store.batch.bind(store);
          store.batch = async (operations) => {
            const results = await batch(operations);
            if (operations[0]?.[0] === 'setIfAbsentOrGet' && results[0] !== true && ++refusals === 2) openGate();
            return results;
          };
          return hostApp({ upstream: { tokenUrl: busy.url }, store });
        }),
      );
      const replies = await Promise.all(Array.from({ length: 9 }, (_, i) => refresh(hosts[i % 3]!, 'rt-busy')));
      expect(busy.requests).toHaveLength(1);
      expect(new Set(replies.map((r) => `${r.status} ${r.headers['retry-after']} ${r.body.toString()}`))).toEqual(new Set(['503 3 {"error":"temporarily_unavailable","call":1}']));
    } finally {
      openGate();
      await busy.close();
    }
  });

  it('the keys of one token share a hash slot; no token in the clear; every key expires', async () => {
    upstream = await rotatingUpstream();
    const prefix = uniquePrefix();
    const [a, b] = await instances(2, upstream.url, prefix);
    const tokens: string[] = [];
    let token = upstream.login();
    for (let i = 0; i < 6; i++) {
      tokens.push(token);
      const reply = await refresh(i % 2 === 0 ? a! : b!, token);
      const body = JSON.parse(reply.body.toString());
      tokens.push(body.access_token);
      token = body.refresh_token;
    }
    const inspector = clients[0] as Cluster;
    const keys = await clusterKeys(inspector, prefix);
    expect(keys.length).toBeGreaterThan(0);
    const slotsPerTag = new Map<string, Set<number>>();
    const dump: string[] = [];
    for (const key of keys) {
      const tag = /\{([0-9a-f]{64})\}/.exec(key)?.[1];
      expect(tag).toBeDefined();
      const slot = Number(await inspector.cluster('KEYSLOT', key));
      slotsPerTag.set(tag!, (slotsPerTag.get(tag!) ?? new Set()).add(slot));
      expect(await inspector.pttl(key)).toBeGreaterThan(0);
      dump.push(key, (await inspector.get(key)) ?? '');
    }
    for (const slots of slotsPerTag.values()) expect(slots.size).toBe(1);
    expect(new Set([...slotsPerTag.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);
    const everything = dump.join('\n');
    for (const secret of tokens) expect(everything).not.toContain(secret);
  });
});

describe('RedisStore on Redis Sentinel (one master, one sentinel)', () => {
  let sentinel: RedisSentinel;
  beforeAll(async () => {
    sentinel = await startRedisSentinel();
  }, 30_000);
  afterAll(async () => {
    await sentinel?.stop();
  });

  it('a retry that lands on the other instance gets the stored reply, found through the sentinel', async () => {
    upstream = await rotatingUpstream();
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all(
      [0, 1].map(async () => {
        const client = await sentinelClient(sentinel);
        clients.push(client);
        return hostApp({ upstream: { tokenUrl: upstream!.url }, store: new RedisStore({ client, prefix }) });
      }),
    );
    const token = upstream.login();
    const first = await refresh(a!, token);
    const retry = await refresh(b!, token);
    expect(first.status).toBe(200);
    expect(upstream.calls()).toBe(1);
    expect(retry.body.equals(first.body)).toBe(true);
  });
});
