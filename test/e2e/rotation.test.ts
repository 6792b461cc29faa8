import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, type NinjaAuthOptions, type NinjaAuthStore, type ReuseDetectedEvent, type RotationEvent, type UpstreamErrorEvent } from '../../src/index.js';
import { asBytes, eventually, hostApp } from '../helpers/host.js';
import { type RotatingUpstream, rotatingUpstream } from '../helpers/servers.js';

// Rotation safety in one process, against a strict rotating upstream whose timing the tests control.
let upstream: RotatingUpstream;
afterEach(async () => {
  vi.useRealTimers();
  await upstream?.close();
});

/** Only `Date` is faked: windows and TTLs follow it, while sockets run on real timers. */
function freezeClock(): (ms: number) => void {
  vi.useFakeTimers({ toFake: ['Date'] });
  return (ms) => vi.setSystemTime(Date.now() + ms);
}

interface Seen {
  rotations: RotationEvent[];
  reuses: ReuseDetectedEvent[];
  upstreamErrors: UpstreamErrorEvent[];
  storeErrors: unknown[];
}

function app(extra: NinjaAuthOptions = {}) {
  const seen: Seen = { rotations: [], reuses: [], upstreamErrors: [], storeErrors: [] };
  const host = hostApp({
    upstream: { tokenUrl: upstream.url },
    ...extra,
    hooks: {
      onRotation: (e) => void seen.rotations.push(e),
      onReuseDetected: (e) => void seen.reuses.push(e),
      onUpstreamError: (e) => void seen.upstreamErrors.push(e),
      onStoreError: (e) => void seen.storeErrors.push(e),
    },
  });
  return { host, seen };
}

const refresh = (host: ReturnType<typeof app>['host'], token: string, body: Record<string, string> = {}) =>
  request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).type('form').send(body).buffer(true).parse(asBytes);

describe('coalescing', () => {
  it('20 concurrent identical refreshes → one upstream call, 20 identical replies', async () => {
    upstream = await rotatingUpstream({ delayMs: 50 });
    const { host } = app();
    const token = upstream.login();
    const replies = await Promise.all(Array.from({ length: 20 }, () => refresh(host, token)));
    expect(upstream.calls()).toBe(1);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => r.body.toString('base64'))).size).toBe(1);
  });

  it('requests that differ in scope or audience are never merged', async () => {
    upstream = await rotatingUpstream({ delayMs: 50 });
    const { host } = app();
    const token = upstream.login();
    const replies = await Promise.all([refresh(host, token, { scope: 'a' }), refresh(host, token, { scope: 'b' }), refresh(host, token, { audience: 'x' })]);
    expect(upstream.calls()).toBe(3);
    expect(replies.map((r) => r.status).sort()).toEqual([200, 400, 400]);
  });

  it('coalesce: false sends every request upstream', async () => {
    upstream = await rotatingUpstream({ delayMs: 30 });
    const { host } = app({ coalesce: false, reuseGraceMs: 0 });
    const token = upstream.login();
    const replies = await Promise.all(Array.from({ length: 4 }, () => refresh(host, token)));
    expect(upstream.calls()).toBe(4);
    expect(replies.filter((r) => r.status === 200)).toHaveLength(1);
  });

  it('a coalesced non-2xx reaches every caller identically', async () => {
    upstream = await rotatingUpstream({ delayMs: 30 });
    const { host } = app();
    const replies = await Promise.all(Array.from({ length: 5 }, () => refresh(host, 'rt-never-issued')));
    expect(upstream.calls()).toBe(1);
    expect(new Set(replies.map((r) => `${r.status}:${r.body.toString()}`))).toEqual(new Set(['400:{"error":"invalid_grant","error_description":"refresh token already used"}']));
  });
});

describe('replay window', () => {
  it('a retry after a lost reply gets the same bytes, with no upstream call, and replayed: true', async () => {
    upstream = await rotatingUpstream();
    const { host, seen } = app();
    const token = upstream.login();
    const first = await refresh(host, token);
    const retry = await refresh(host, token);
    expect(upstream.calls()).toBe(1);
    expect(retry.status).toBe(200);
    expect(retry.body.equals(first.body)).toBe(true);
    expect(retry.headers['content-type']).toBe(first.headers['content-type']);
    await eventually(() => seen.rotations.length === 2);
    expect(seen.rotations.map((r) => r.replayed)).toEqual([false, true]);
    expect(seen.reuses).toHaveLength(0);
  });

  it('once the successor has been presented, the old token is never replayed again (and reuse is reported)', async () => {
    upstream = await rotatingUpstream();
    const { host, seen } = app();
    const token = upstream.login();
    const first = await refresh(host, token);
    const successor = JSON.parse(first.body.toString()).refresh_token as string;
    expect((await refresh(host, successor)).status).toBe(200);
    const stale = await refresh(host, token);
    expect(stale.status).toBe(400);
    expect(upstream.calls()).toBe(3);
    await eventually(() => seen.reuses.length === 1);
    expect(seen.reuses[0]).toMatchObject({ type: 'reuse_detected', status: 400, endpoint: 'refresh_token' });
    expect(seen.reuses[0]!.refreshTokenFingerprint).toMatch(/^sha256:[0-9a-f]{8}$/);
    expect(seen.reuses[0]!.sinceRotationMs).toBeGreaterThanOrEqual(0);
  });

  it('non-2xx replies are never replayed', async () => {
    upstream = await rotatingUpstream();
    const { host } = app();
    await refresh(host, 'rt-unknown');
    await refresh(host, 'rt-unknown');
    expect(upstream.calls()).toBe(2);
  });

  it('reuseGraceMs: 0 turns replay off: the retry goes upstream and fails there', async () => {
    upstream = await rotatingUpstream();
    const { host, seen } = app({ reuseGraceMs: 0 });
    const token = upstream.login();
    expect((await refresh(host, token)).status).toBe(200);
    expect((await refresh(host, token)).status).toBe(400);
    expect(upstream.calls()).toBe(2);
    await eventually(() => seen.reuses.length === 1);
  });

  it('after the window, the old token goes upstream and reuse is reported with sinceRotationMs', async () => {
    const advance = freezeClock();
    upstream = await rotatingUpstream();
    const { host, seen } = app({ reuseGraceMs: 40 });
    const token = upstream.login();
    await refresh(host, token);
    advance(39);
    const within = await refresh(host, token);
    expect(within.status).toBe(200);
    expect(upstream.calls()).toBe(1);
    advance(1);
    const late = await refresh(host, token);
    expect(late.status).toBe(400);
    expect(upstream.calls()).toBe(2);
    await eventually(() => seen.reuses.length === 1);
    expect(seen.reuses[0]!.sinceRotationMs).toBe(40);
  });

  it('reuseDetectionMs: 0 turns reuse detection off', async () => {
    upstream = await rotatingUpstream();
    const { host, seen } = app({ reuseGraceMs: 0, reuseDetectionMs: 0 });
    const token = upstream.login();
    await refresh(host, token);
    await refresh(host, token);
    await refresh(host, 'rt-unknown');
    await eventually(() => seen.rotations.length === 1 && seen.upstreamErrors.length === 2);
    expect(seen.reuses).toHaveLength(0);
  });

  it('rotated-away fingerprints are forgotten after reuseDetectionMs', async () => {
    const advance = freezeClock();
    upstream = await rotatingUpstream();
    const { host, seen } = app({ reuseGraceMs: 0, reuseDetectionMs: 60_000 });
    const first = upstream.login();
    const second = upstream.login();
    await refresh(host, first);
    await refresh(host, second);
    advance(59_999);
    expect((await refresh(host, first)).status).toBe(400);
    await eventually(() => seen.reuses.length === 1);
    advance(1);
    expect((await refresh(host, second)).status).toBe(400);
    await eventually(() => seen.upstreamErrors.length === 2);
    expect(seen.reuses).toHaveLength(1);
  });
});

describe('successorPresented', () => {
  it('false: a client that lost the reply and retried after the window, its successor never seen', async () => {
    const advance = freezeClock();
    upstream = await rotatingUpstream();
    const { host, seen } = app();
    const token = upstream.login();
    expect((await refresh(host, token)).status).toBe(200);
    advance(10_000);
    expect((await refresh(host, token)).status).toBe(400);
    await eventually(() => seen.reuses.length === 1);
    expect(seen.reuses[0]).toMatchObject({ successorPresented: false, sinceRotationMs: 10_000 });
  });

  it('true: the old token used beside a live successor, within the window and long after it', async () => {
    const advance = freezeClock();
    upstream = await rotatingUpstream();
    const { host, seen } = app();
    const token = upstream.login();
    const first = await refresh(host, token);
    const successor = JSON.parse(first.body.toString()).refresh_token as string;
    expect((await refresh(host, successor)).status).toBe(200);
    expect((await refresh(host, token)).status).toBe(400);
    await eventually(() => seen.reuses.length === 1);
    // Remembered for as long as the fingerprint is, not only for the replay window.
    advance(3_600_000);
    expect((await refresh(host, token)).status).toBe(400);
    await eventually(() => seen.reuses.length === 2);
    expect(seen.reuses.map((r) => r.successorPresented)).toEqual([true, true]);
    expect(seen.reuses[1]!.sinceRotationMs).toBe(3_600_000);
  });

  it('true also when the successor was first presented after the window', async () => {
    const advance = freezeClock();
    upstream = await rotatingUpstream();
    const { host, seen } = app();
    const token = upstream.login();
    const successor = JSON.parse((await refresh(host, token)).body.toString()).refresh_token as string;
    advance(60_000);
    expect((await refresh(host, successor)).status).toBe(200);
    expect((await refresh(host, token)).status).toBe(400);
    await eventually(() => seen.reuses.length === 1);
    expect(seen.reuses[0]!.successorPresented).toBe(true);
  });

  it('a successor that is itself rotated away tells of its own successor, not of its predecessor’s', async () => {
    upstream = await rotatingUpstream();
    const { host, seen } = app({ reuseGraceMs: 0 });
    const first = upstream.login();
    const second = JSON.parse((await refresh(host, first)).body.toString()).refresh_token as string;
    const third = JSON.parse((await refresh(host, second)).body.toString()).refresh_token as string;
    expect(third).toMatch(/^rt-/);
    expect((await refresh(host, second)).status).toBe(400);
    await eventually(() => seen.reuses.length === 1);
    expect(seen.reuses[0]!.successorPresented).toBe(false);
    expect((await refresh(host, first)).status).toBe(400);
    await eventually(() => seen.reuses.length === 2);
    expect(seen.reuses[1]!.successorPresented).toBe(true);
  });
});

describe('the store', () => {
  it('holds no token in the clear: keys are fingerprints, replies are encrypted', async () => {
    upstream = await rotatingUpstream();
    const written: string[] = [];
    const memory = new MemoryStore();
    const recording: NinjaAuthStore = {
      get: (k) => memory.get(k),
      set: (k, v, ttl) => {
        written.push(k, v);
        memory.set(k, v, ttl);
      },
      setIfAbsent: (k, v, ttl) => {
        written.push(k, v);
        return memory.setIfAbsent(k, v, ttl);
      },
      deleteIfEquals: (k, v) => memory.deleteIfEquals(k, v),
    };
    const { host } = app({ store: recording });
    const token = upstream.login();
    const first = await refresh(host, token);
    const next = JSON.parse(first.body.toString());
    await refresh(host, token);
    expect(written.length).toBeGreaterThan(0);
    for (const value of written) {
      for (const secret of [token, next.refresh_token, next.access_token]) expect(value).not.toContain(secret);
    }
    expect(written.some((v) => v.startsWith('reply:'))).toBe(true);
  });

  it.each([
    ['throws', (): NinjaAuthStore => ({ get: () => { throw new Error('store down'); }, set: () => undefined, setIfAbsent: () => true, deleteIfEquals: () => undefined })],
    ['rejects', (): NinjaAuthStore => ({ get: async () => { throw new Error('store down'); }, set: async () => undefined, setIfAbsent: async () => true, deleteIfEquals: async () => undefined })],
    ['hangs', (): NinjaAuthStore => ({ get: () => new Promise(() => undefined), set: () => new Promise(() => undefined), setIfAbsent: () => new Promise(() => undefined), deleteIfEquals: () => new Promise(() => undefined) })],
    ['hangs with a promise-like that is not a native Promise', (): NinjaAuthStore => {
      const never = { then: () => undefined } as unknown as Promise<never>;
      return { get: () => never, set: () => never, setIfAbsent: () => never, deleteIfEquals: () => never };
    }],
  ])('a store that %s: the refresh goes straight upstream, the caller never sees it, onStoreError does', async (_how, makeStore) => {
    upstream = await rotatingUpstream();
    const { host, seen } = app({ store: makeStore(), storeTimeoutMs: 50 });
    const token = upstream.login();
    const res = await refresh(host, token);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString()).refresh_token).toMatch(/^rt-2-/);
    expect(upstream.calls()).toBe(1);
    await eventually(() => seen.storeErrors.length >= 1);
  });
});

describe('revocation and the replay window', () => {
  it('a revoked token is never replayed, even within the window', async () => {
    upstream = await rotatingUpstream();
    const { host } = app({ upstream: { tokenUrl: upstream.url, revokeUrl: `${upstream.origin}/revoke` } });
    const token = upstream.login();
    expect((await refresh(host, token)).status).toBe(200);
    expect((await request(host).post('/auth/revoke_token').type('form').send({ token })).status).toBe(200);
    const afterRevoke = await refresh(host, token);
    expect(afterRevoke.status).toBe(400);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/token', '/revoke', '/token']);
  });
});
