import type { Redis } from 'ioredis';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type NinjaAuthStore, RedisStore } from '../../src/index.js';
import { MAX_PROBE_MS } from '../../src/rotation/store-health.js';
import { asBytes, hostApp, sleep } from '../helpers/host.js';
import { type RedisServer, redisClient, startRedisServer, uniquePrefix } from '../helpers/redis.js';
import { type RotatingUpstream, rotatingUpstream } from '../helpers/servers.js';

// Three instances sharing a real redis-server that the test kills and starts again. Only `Date` is faked: the
// guard's probe schedule follows it, while sockets and ioredis's reconnections run on real timers.
let redis: RedisServer | undefined;
let upstream: RotatingUpstream | undefined;
const clients: Redis[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const client of clients.splice(0)) client.disconnect();
  await upstream?.close();
  await redis?.stop();
});

/** A store that counts the operations that reach it. */
function counting(store: NinjaAuthStore): { store: NinjaAuthStore; calls: () => number } {
  let calls = 0;
  const count = <A extends unknown[], R>(operation: (...args: A) => R) => (...args: A): R => {
    calls++;
    return operation(...args);
  };
  return {
    store: {
      get: count((key) => store.get(key)),
      set: count((key, value, ttlMs) => store.set(key, value, ttlMs)),
      setIfAbsent: count((key, value, ttlMs) => store.setIfAbsent(key, value, ttlMs)),
      deleteIfEquals: count((key, value) => store.deleteIfEquals(key, value)),
    },
    calls: () => calls,
  };
}

const refresh = (host: ReturnType<typeof hostApp>, token: string) =>
  request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).buffer(true).parse(asBytes);
const successorOf = (reply: { body: Buffer }): string => JSON.parse(reply.body.toString()).refresh_token as string;

describe.each([false, true])('Redis down and back, ioredis enableOfflineQueue: %s', (enableOfflineQueue) => {
  it('sticky sessions survive on each instance’s own memory, one onStoreError per instance, the store skipped until it answers, then shared again', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    redis = await startRedisServer();
    upstream = await rotatingUpstream();
    const prefix = uniquePrefix();
    const fleet = await Promise.all(
      [0, 1, 2].map(async () => {
        const client = await redisClient(redis!.url, { enableOfflineQueue });
        clients.push(client);
        const store = counting(new RedisStore({ client, prefix }));
        const seen = { storeErrors: [] as unknown[], callsAtReport: -1 };
        const host = hostApp({
          upstream: { tokenUrl: upstream!.url },
          store: store.store,
          storeTimeoutMs: 300,
          hooks: {
            onStoreError: (error) => {
              seen.storeErrors.push(error);
              seen.callsAtReport = store.calls();
            },
          },
        });
        return Object.assign(seen, { host, store });
      }),
    );
    const sessions = Array.from({ length: 12 }, (_, i) => ({ instance: fleet[i % 3]!, token: upstream!.login() }));
    for (const session of sessions) {
      const reply = await refresh(session.instance.host, session.token);
      expect(reply.status).toBe(200);
      session.token = successorOf(reply);
    }

    await redis.stop();
    const callsBefore = upstream.calls();
    for (const session of sessions) {
      // Tab A refreshes; tab B, on the same instance, presents the same token once A has its reply: only a
      // replay can save the session from this strict upstream.
      const tabA = await refresh(session.instance.host, session.token);
      const tabB = await refresh(session.instance.host, session.token);
      expect(tabA.status).toBe(200);
      expect(tabB.status).toBe(200);
      expect(tabB.body.equals(tabA.body)).toBe(true);
      session.token = successorOf(tabA);
    }
    expect(upstream.calls() - callsBefore).toBe(sessions.length);
    for (const instance of fleet) {
      expect(instance.storeErrors).toHaveLength(1);
      // After the failure that opened the episode no request asked Redis anything: none waited on it.
      expect(instance.store.calls()).toBe(instance.callsAtReport);
    }

    await redis.restart();
    const inspector = await redisClient(redis.url);
    clients.push(inspector);
    for (const instance of fleet) {
      // Each round moves the clock past the longest probe backoff: one refresh starts a probe, and once a
      // probe has been answered, refreshes write to Redis again.
      const session = sessions.find((s) => s.instance === instance)!;
      let keysBefore = (await inspector.keys(`${prefix}*`)).length;
      for (let round = 0; ; round++) {
        expect(round).toBeLessThan(100);
        vi.setSystemTime(Date.now() + MAX_PROBE_MS);
        const reply = await refresh(instance.host, session.token);
        expect(reply.status).toBe(200);
        session.token = successorOf(reply);
        const keys = (await inspector.keys(`${prefix}*`)).length;
        if (keys > keysBefore) break;
        keysBefore = keys;
        await sleep(20);
      }
    }
    // Shared again: a retry that lands on another instance gets the stored reply.
    const session = sessions[0]!;
    const callsBeforeRetry = upstream.calls();
    const first = await refresh(fleet[0]!.host, session.token);
    const retry = await refresh(fleet[1]!.host, session.token);
    expect(retry.status).toBe(200);
    expect(retry.body.equals(first.body)).toBe(true);
    expect(upstream.calls() - callsBeforeRetry).toBe(1);
    for (const instance of fleet) expect(instance.storeErrors).toHaveLength(1);
  });
});
