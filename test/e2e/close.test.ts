import type { ServerResponse } from 'node:http';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore, type NinjaAuthOptions, type NinjaAuthRouter, type NinjaAuthStore, ninjaAuth } from '../../src/index.js';
import { asBytes, eventually } from '../helpers/host.js';
import { type RawUpstream, rawUpstream } from '../helpers/servers.js';

// router.close(): a graceful shutdown waits for what is in flight — the upstream exchange, its store write and the
// hooks it started — serves late arrivals with Connection: close, then answers 503 and holds no pool open.
const ROTATED = '{"access_token":"at-2","refresh_token":"rt-2","token_type":"Bearer"}';

/** Replies the test holds until it lets them go, so "in flight" is a state the test controls, not a race. */
let held: Array<() => void> = [];
let upstream: RawUpstream;
beforeAll(async () => {
  upstream = await rawUpstream((res: ServerResponse, seen) => {
    const send = (): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(ROTATED);
    };
    if (seen.url === '/held') held.push(send);
    else send();
  });
});
afterAll(async () => {
  await upstream.close();
});
beforeEach(() => {
  upstream.requests.length = 0;
  held = [];
});

function mounted(path: string, extra: NinjaAuthOptions = {}): { app: express.Express; router: NinjaAuthRouter } {
  const router = ninjaAuth({ upstream: { tokenUrl: `${upstream.origin}${path}` }, ...extra });
  const app = express();
  app.use(router);
  return { app, router };
}

/** Sent at once (a supertest request only starts when awaited). */
const refresh = (app: express.Express, token = 'rt-1'): Promise<request.Response> =>
  request(app).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).buffer(true).parse(asBytes).then((res) => res);

/** Lets pending callbacks run, so that a promise that could settle now would have. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function tracked(promise: Promise<void>): { readonly done: boolean } {
  const state = { done: false };
  void promise.then(() => {
    state.done = true;
  });
  return state;
}

describe('router.close()', () => {
  it('waits for the refresh in flight and the onRotation hook it started, then resolves', async () => {
    let releaseHook!: () => void;
    const persisted: string[] = [];
    const { app, router } = mounted('/held', {
      hooks: {
        onRotation: async (event) => {
          await new Promise<void>((resolve) => {
            releaseHook = resolve;
          });
          persisted.push(event.tokens.refreshToken!);
        },
      },
    });
    const inFlight = refresh(app);
    await eventually(() => held.length === 1);
    const closing = tracked(router.close());
    await settle();
    expect(closing.done).toBe(false);

    held.shift()!();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(ROTATED);
    await eventually(() => releaseHook !== undefined);
    await settle();
    expect(closing.done).toBe(false);

    releaseHook();
    await eventually(() => closing.done);
    expect(persisted).toEqual(['rt-2']);
  });

  it('serves requests that arrive while it is closing, with Connection: close', async () => {
    const { app, router } = mounted('/held');
    const first = refresh(app, 'rt-a');
    await eventually(() => held.length === 1);
    const closing = tracked(router.close());
    const late = refresh(app, 'rt-b');
    await eventually(() => held.length === 2);
    for (const release of held.splice(0)) release();
    const [a, b] = await Promise.all([first, late]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(b.headers['connection']).toBe('close');
    expect(b.body.toString()).toBe(ROTATED);
    await eventually(() => closing.done);
  });

  it('afterwards: 503 temporarily_unavailable with Retry-After: 1, and the upstream is not called', async () => {
    const { app, router } = mounted('/token');
    expect((await refresh(app)).status).toBe(200);
    await router.close();
    upstream.requests.length = 0;
    for (const send of [() => refresh(app, 'rt-9'), () => request(app).post('/auth/token').type('form').send({ username: 'a', password: 'b' }).buffer(true).parse(asBytes)]) {
      const res = await send();
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(JSON.parse(res.body.toString())).toMatchObject({ error: 'temporarily_unavailable' });
    }
    expect(upstream.requests).toHaveLength(0);
  });

  it('called twice, or racing requests, returns the same promise', async () => {
    const { app, router } = mounted('/token');
    const racing = Array.from({ length: 5 }, (_, i) => refresh(app, `rt-race-${i}`));
    await eventually(() => upstream.requests.length > 0);
    const first = router.close();
    const second = router.close();
    expect(second).toBe(first);
    const statuses = (await Promise.all(racing)).map((res) => res.status);
    await first;
    // Each racing request was either taken before close() (200) or after it resolved (503), never dropped.
    for (const status of statuses) expect([200, 503]).toContain(status);
    expect(router.close()).toBe(first);
  });

  it('with nothing in flight resolves at once', async () => {
    const { router } = mounted('/token');
    await router.close();
  });

  it('never shuts down a store the app passed in; the router’s own default one it does', async () => {
    const store = new MemoryStore();
    let shutdowns = 0;
    const watched: NinjaAuthStore = { get: (k) => store.get(k), set: (k, v, t) => store.set(k, v, t), setIfAbsent: (k, v, t) => store.setIfAbsent(k, v, t), deleteIfEquals: (k, v) => store.deleteIfEquals(k, v), shutdown: () => void shutdowns++, localOnly: true };
    const { app, router } = mounted('/token', { store: watched });
    expect((await refresh(app)).status).toBe(200);
    await router.close();
    expect(shutdowns).toBe(0);
    expect(store.size).toBeGreaterThan(0);
    store.shutdown();
  });

  it('a store that hangs during close: the refresh goes on after storeTimeoutMs, and close() resolves', async () => {
    const hanging: NinjaAuthStore = {
      get: () => new Promise<undefined>(() => undefined),
      set: () => new Promise<void>(() => undefined),
      setIfAbsent: () => new Promise<boolean>(() => undefined),
      deleteIfEquals: () => new Promise<void>(() => undefined),
    };
    const storeErrors: unknown[] = [];
    const { app, router } = mounted('/held', { store: hanging, storeTimeoutMs: 50, hooks: { onStoreError: (error) => void storeErrors.push(error) } });
    const inFlight = refresh(app);
    await eventually(() => held.length === 1);
    const closing = router.close();
    held.shift()!();
    expect((await inFlight).status).toBe(200);
    await closing;
    expect(storeErrors.length).toBeGreaterThan(0);
  });

  it('a hook that never settles holds close() at most timeoutMs + hookTimeoutMs', async () => {
    let hookRunning = false;
    const { app, router } = mounted('/token', {
      timeoutMs: 100,
      hookTimeoutMs: 100,
      hooks: {
        onRotation: () => {
          hookRunning = true;
          return new Promise<void>(() => undefined);
        },
      },
    });
    expect((await refresh(app)).status).toBe(200);
    await eventually(() => hookRunning);
    // The test's own timeout is the failure: close() must not wait for the hook for ever.
    await router.close();
  });
});
