import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore, type NinjaAuthStore } from '../../src/index.js';
import { asBytes, eventually, hostApp } from '../helpers/host.js';
import { type RawUpstream, rawUpstream } from '../helpers/servers.js';

// How often a caller waits for a shared store: once before the upstream call, never after it, and once for a
// replay. A store whose every answer waits at a gate stands for the network: what one batch asks goes through the
// gate together (one round trip); the test can shut the gate and see whether the caller still gets its answer.
const ROTATED = (n: number): string => `{"access_token":"at-${n}","refresh_token":"rt-next-${n}","token_type":"Bearer"}`;

interface GatedStore {
  readonly store: NinjaAuthStore;
  /** Round trips so far: each opening of the gate that let a batch through. */
  trips(): number;
  /** Let nothing through until `open()`. */
  shut(): void;
  /** Shut the gate by itself as soon as this many round trips have gone through. */
  shutAfter(trips: number): void;
  open(): void;
  /** Nothing is waiting at the gate. */
  idle(): boolean;
  stop(): void;
}

function gatedStore(): GatedStore {
  const inner = new MemoryStore();
  const waiting: Array<() => void> = [];
  let trips = 0;
  let shut = false;
  let shutAt = Number.POSITIVE_INFINITY;
  const gate = <T>(work: () => T): Promise<T> => new Promise((resolve) => waiting.push(() => resolve(work())));
  const pump = setInterval(() => {
    if (shut || waiting.length === 0) return;
    trips++;
    for (const pass of waiting.splice(0)) pass();
    if (trips >= shutAt) shut = true;
  }, 1);
  return {
    // Not localOnly: the router treats it as a shared store, with its lock.
    store: {
      get: (key) => gate(() => inner.get(key)),
      set: (key, value, ttl) => gate(() => inner.set(key, value, ttl)),
      setIfAbsent: (key, value, ttl) => gate(() => inner.setIfAbsent(key, value, ttl)),
      setIfAbsentOrGet: (key, value, ttl) => gate(() => inner.setIfAbsentOrGet(key, value, ttl)),
      deleteIfEquals: (key, value) => gate(() => inner.deleteIfEquals(key, value)),
    },
    trips: () => trips,
    shut: () => {
      shut = true;
    },
    shutAfter: (count) => {
      shutAt = count;
    },
    open: () => {
      shut = false;
      shutAt = Number.POSITIVE_INFINITY;
    },
    idle: () => waiting.length === 0,
    stop: () => {
      clearInterval(pump);
      inner.shutdown();
    },
  };
}

let upstream: RawUpstream | undefined;
let gated: GatedStore | undefined;
afterEach(async () => {
  gated?.stop();
  await upstream?.close();
});

describe('round trips to a shared store on the caller’s path', () => {
  it('a refresh that reaches the upstream: one before the upstream call, none after it', async () => {
    const store = gatedStore();
    gated = store;
    let tripsBeforeUpstream: number | undefined;
    let calls = 0;
    upstream = await rawUpstream((res) => {
      tripsBeforeUpstream = store.trips();
      // From here on the store answers nothing: the caller must get its reply all the same.
      store.shut();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(ROTATED(++calls));
    });
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, store: store.store, storeTimeoutMs: 5_000 });
    const res = await request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt-trips-1').buffer(true).parse(asBytes);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(ROTATED(1));
    expect(tripsBeforeUpstream).toBe(1);

    // The store learns the answer after the caller has it: one batch for the reply, one for the lock's release,
    // sent together.
    const before = store.trips();
    store.open();
    await eventually(() => store.idle() && store.trips() > before);
    expect(store.trips() - before).toBe(1);
  });

  it('a replay: one round trip', async () => {
    const store = gatedStore();
    gated = store;
    let calls = 0;
    upstream = await rawUpstream((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(ROTATED(++calls));
    });
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, store: store.store, storeTimeoutMs: 5_000 });
    const first = await request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt-trips-2').buffer(true).parse(asBytes);
    await eventually(() => store.idle());
    // A second router on the same store, as another instance would be: nothing of the first in its memory.
    const other = hostApp({ upstream: { tokenUrl: upstream.url }, store: store.store, storeTimeoutMs: 5_000 });
    const before = store.trips();
    store.shutAfter(before + 1);
    const replayed = await request(other).post('/auth/refresh_token').set('authorization', 'Bearer rt-trips-2').buffer(true).parse(asBytes);
    expect(replayed.status).toBe(200);
    expect(replayed.body.equals(first.body)).toBe(true);
    expect(calls).toBe(1);
    expect(store.trips()).toBe(before + 1);
    store.open();
  });

  it('a non-2xx answer is shared only while it is in flight: the same request once it is out asks again', async () => {
    const store = gatedStore();
    gated = store;
    let calls = 0;
    upstream = await rawUpstream((res) => {
      calls++;
      // The lock's release (with the answer for waiters) stays at the gate: the leader has not finished with the store.
      store.shut();
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '3' });
      res.end('{"error":"slow_down"}');
    });
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, store: store.store, storeTimeoutMs: 5_000 });
    const send = () => request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt-limited').buffer(true).parse(asBytes).then((r) => r);
    expect((await send()).status).toBe(429);
    const again = send();
    await new Promise((resolve) => setTimeout(resolve, 20));
    store.open();
    expect((await again).status).toBe(429);
    expect(calls).toBe(2);
  });
});
