import { describe, expect, it } from 'vitest';
import { MemoryStore, type NinjaAuthStore } from '../../src/index.js';
import { parseOptions } from '../../src/options.js';
import { type RefreshResult, rotationGuard } from '../../src/rotation/guard.js';
import { answered, type UpstreamCall, type UpstreamOutcome } from '../../src/upstream.js';
import { failure } from '../../src/upstream-failure.js';

// The lock protocol between instances, with the steps in the test's hands: two guards ("instances") over one
// shared store, and an upstream whose answers the test releases.

/** A MemoryStore that passes for a shared store, and tells the test when a lock was refused. */
function sharedStore(onRefused: () => void = () => undefined, withTakeOrRead = true): NinjaAuthStore {
  const memory = new MemoryStore();
  const store: NinjaAuthStore = {
    get: (key) => memory.get(key),
    set: (key, value, ttlMs) => memory.set(key, value, ttlMs),
    setIfAbsent: (key, value, ttlMs) => {
      const taken = memory.setIfAbsent(key, value, ttlMs);
      if (!taken) onRefused();
      return taken;
    },
    deleteIfEquals: (key, value) => memory.deleteIfEquals(key, value),
  };
  if (withTakeOrRead) {
    store.setIfAbsentOrGet = (key, value, ttlMs) => {
      const result = memory.setIfAbsentOrGet(key, value, ttlMs);
      if (result !== true) onRefused();
      return result;
    };
  }
  return store;
}

/** An upstream whose first `held` calls wait until the test answers them; any call after those is answered at once. */
function heldUpstream(held = 1) {
  const pending: Array<(outcome: UpstreamOutcome) => void> = [];
  const unexpected = answered(500, {}, Buffer.from('a call the test did not expect'));
  return {
    calls: () => pending.length,
    answer: (index: number, outcome: UpstreamOutcome) => pending[index]!(outcome),
    send: (_call: UpstreamCall) =>
      new Promise<UpstreamOutcome>((resolve) => {
        pending.push(resolve);
        if (pending.length > held) resolve(unexpected);
      }),
  };
}

const call: UpstreamCall = { url: 'http://127.0.0.1:9/token', form: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'rt-1' }) };
const throttled = answered(429, { 'retry-after': '7', 'content-type': 'application/json' }, Buffer.from('{"error":"slow_down"}'));
const rotatedReply = answered(200, { 'content-type': 'application/json' }, Buffer.from('{"access_token":"at","refresh_token":"rt-2"}'));

function instance(store: NinjaAuthStore, upstream: ReturnType<typeof heldUpstream>, extra: Parameters<typeof parseOptions>[0] = {}) {
  return rotationGuard(parseOptions({ upstream: { tokenUrl: call.url }, store, ...extra }), upstream.send);
}

const until = async (check: () => boolean): Promise<void> => {
  for (let i = 0; !check(); i++) {
    if (i > 500) throw new Error('condition not met');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
};

describe.each([
  ['with setIfAbsentOrGet', true],
  ['with setIfAbsent and a read', false],
])('the lock between two instances (%s)', (_name, withTakeOrRead) => {
  it('a waiter gets the holder’s non-2xx even when the lock is released before it looks again', async () => {
    const upstream = heldUpstream();
    let refusals = 0;
    const store = sharedStore(() => refusals++, withTakeOrRead);
    const a = instance(store, upstream);
    const b = instance(store, upstream);
    const first = a.refresh(call, 'rt-1');
    await until(() => upstream.calls() === 1);
    const second = b.refresh(call, 'rt-1');
    await until(() => refusals === 1);
    // The holder answers, publishes and releases while the waiter sleeps before its first look.
    upstream.answer(0, throttled);
    const [x, y] = (await Promise.all([first, second])) as [RefreshResult, RefreshResult];
    expect(upstream.calls()).toBe(1);
    expect(x.source).toBe('upstream');
    expect(y.source).toBe('coalesced');
    expect(y.outcome).toMatchObject({ kind: 'answered', status: 429, headers: throttled.headers });
    expect(y.outcome.kind === 'answered' && y.outcome.body.equals(throttled.body)).toBe(true);
  });

  it('a 2xx rotation reaches the waiter from the replay window; with replay off, from the holder’s answer', async () => {
    for (const reuseGraceMs of [10_000, 0]) {
      const upstream = heldUpstream();
      let refusals = 0;
      const store = sharedStore(() => refusals++, withTakeOrRead);
      const a = instance(store, upstream, { reuseGraceMs });
      const b = instance(store, upstream, { reuseGraceMs });
      const first = a.refresh(call, 'rt-1');
      await until(() => upstream.calls() === 1);
      const second = b.refresh(call, 'rt-1');
      await until(() => refusals === 1);
      upstream.answer(0, rotatedReply);
      const [, y] = await Promise.all([first, second]);
      expect(upstream.calls()).toBe(1);
      expect(y.source).toBe(reuseGraceMs > 0 ? 'store' : 'coalesced');
      expect(y.outcome.kind === 'answered' && y.outcome.body.equals(rotatedReply.body)).toBe(true);
    }
  });

  it('a router failure (502) is handed over as the same refusal', async () => {
    const upstream = heldUpstream();
    let refusals = 0;
    const store = sharedStore(() => refusals++, withTakeOrRead);
    const a = instance(store, upstream);
    const b = instance(store, upstream);
    const first = a.refresh(call, 'rt-1');
    await until(() => upstream.calls() === 1);
    const second = b.refresh(call, 'rt-1');
    await until(() => refusals === 1);
    upstream.answer(0, failure(502, 'ECONNRESET'));
    const [x, y] = await Promise.all([first, second]);
    expect(upstream.calls()).toBe(1);
    expect(y.outcome).toEqual(x.outcome);
  });

  it('after the lock, the same request goes upstream again: a non-2xx is never replayed', async () => {
    const upstream = heldUpstream(2);
    const store = sharedStore(() => undefined, withTakeOrRead);
    const a = instance(store, upstream);
    const b = instance(store, upstream);
    const first = a.refresh(call, 'rt-1');
    await until(() => upstream.calls() === 1);
    upstream.answer(0, throttled);
    await first;
    const later = b.refresh(call, 'rt-1');
    await until(() => upstream.calls() === 2);
    upstream.answer(1, throttled);
    expect((await later).source).toBe('upstream');
  });
});

// What the store learns from a refresh: a shared store's writes are sent before the caller has its answer, the
// memory store's at the end of that turn of the event loop, after the reply (until then a repeat coalesces).
describe('when the store learns what a refresh got', () => {
  const callFor = (refreshToken: string): UpstreamCall => ({ ...call, form: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }) });
  const rotationTo = (successor: string): UpstreamOutcome =>
    answered(200, { 'content-type': 'application/json' }, Buffer.from(`{"access_token":"at","refresh_token":"${successor}"}`));

  /** A rotation over a memory store, with the caller's answer in hand and the turn not over yet. */
  const rotatedOverMemory = async () => {
    const store = new MemoryStore();
    const upstream = heldUpstream();
    const guard = instance(store, upstream);
    const refreshing = guard.refresh(call, 'rt-1');
    await until(() => upstream.calls() === 1);
    upstream.answer(0, rotatedReply);
    const first = await refreshing;
    expect(first.source).toBe('upstream');
    expect(store.size).toBe(0);
    return { store, upstream, guard, first };
  };

  it('the memory store gets the sealed reply after the caller has it, at the end of the turn when nobody asks first', async () => {
    const { store, upstream, guard, first } = await rotatedOverMemory();
    await first.settled;
    expect(store.size).toBeGreaterThan(0);
    const later = await guard.refresh(call, 'rt-1');
    expect(later.source).toBe('store');
    expect(later.outcome.kind === 'answered' && first.outcome.kind === 'answered' && later.outcome.body.equals(first.outcome.body)).toBe(true);
    expect(upstream.calls()).toBe(1);
    guard.dispose();
  });

  it('a refresh before the end of the turn finds the memory store as if it had been written at once', async () => {
    const { upstream, guard, first } = await rotatedOverMemory();
    // The same request, in the same turn: replayed from the store, not handed on from the request in flight.
    const repeat = await guard.refresh(call, 'rt-1');
    expect(repeat.source).toBe('store');
    expect(repeat.outcome.kind === 'answered' && first.outcome.kind === 'answered' && repeat.outcome.body.equals(first.outcome.body)).toBe(true);
    // Another request with the rotated-away token (another scope): not the same request, so reuse, and upstream.
    const otherScope = { ...call, form: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'rt-1', scope: 'other' }) };
    const reused = await guard.refresh(otherScope, 'rt-1');
    expect(reused.source).toBe('upstream');
    expect(reused.reuse?.successorPresented).toBe(false);
    expect(upstream.calls()).toBe(2);
    // The successor presented, still in the same turn: from now on the old token is never replayed.
    await guard.refresh({ ...call, form: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'rt-2' }) }, 'rt-2');
    const afterSuccessor = await guard.refresh(call, 'rt-1');
    expect(afterSuccessor.source).toBe('upstream');
    expect(afterSuccessor.reuse?.successorPresented).toBe(true);
    expect(upstream.calls()).toBe(4);
    guard.dispose();
  });

  it('a shared store has the writes sent before the caller has its answer: another instance asked next must find them', async () => {
    const memory = new MemoryStore();
    const sent: string[] = [];
    const store: NinjaAuthStore = {
      get: (key) => memory.get(key),
      set: (key, value, ttlMs) => (sent.push(`set ${key.split(':')[0]}`), memory.set(key, value, ttlMs)),
      setIfAbsent: (key, value, ttlMs) => memory.setIfAbsent(key, value, ttlMs),
      setIfAbsentOrGet: (key, value, ttlMs) => memory.setIfAbsentOrGet(key, value, ttlMs),
      deleteIfEquals: (key, value) => (sent.push(`release ${key.split(':')[0]}`), memory.deleteIfEquals(key, value)),
    };
    const upstream = heldUpstream(2);
    const guard = instance(store, upstream);
    const refreshing = [guard.refresh(callFor('a-1'), 'a-1'), guard.refresh(callFor('b-1'), 'b-1')];
    await until(() => upstream.calls() === 2);
    upstream.answer(0, rotationTo('a-2'));
    upstream.answer(1, rotationTo('b-2'));
    const results = await Promise.all(refreshing);
    expect(results.map((result) => result.source)).toEqual(['upstream', 'upstream']);
    // Each refresh: its reply, when it was rotated and the lock's release in one batch, then its successor's link.
    expect(sent).toEqual(['set reply', 'set rotated', 'release lock', 'set pred', 'set reply', 'set rotated', 'release lock', 'set pred']);
    await Promise.all(results.map((result) => result.settled));
    guard.dispose();
  });
});
