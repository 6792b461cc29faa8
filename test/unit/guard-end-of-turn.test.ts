import { describe, expect, it } from 'vitest';
import { MemoryStore, type NinjaAuthStore } from '../../src/index.js';
import { parseOptions } from '../../src/options.js';
import { rotationGuard } from '../../src/rotation/guard.js';
import { answered, type UpstreamCall, type UpstreamOutcome } from '../../src/upstream.js';

// What the memory store learns from a refresh is done at the end of the turn of the event loop in which the answer
// came, after the replies, and until then a repeat coalesces; a shared store's writes are sent before the reply.

const callFor = (refreshToken: string): UpstreamCall => ({
  url: 'http://127.0.0.1:9/token',
  form: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
});
const rotation = (successor: string): UpstreamOutcome =>
  answered(200, { 'content-type': 'application/json' }, Buffer.from(`{"access_token":"at","refresh_token":"${successor}"}`));

/** An upstream whose calls wait until the test answers them. */
function heldUpstream() {
  const pending: Array<(outcome: UpstreamOutcome) => void> = [];
  return {
    calls: () => pending.length,
    answer: (index: number, outcome: UpstreamOutcome) => pending[index]!(outcome),
    send: (_call: UpstreamCall) => new Promise<UpstreamOutcome>((resolve) => pending.push(resolve)),
  };
}

const flushed = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('when the store learns what a refresh got', () => {
  it('the memory store gets the sealed reply after the caller has it; a repeat meanwhile coalesces, later it is replayed', async () => {
    const store = new MemoryStore();
    const upstream = heldUpstream();
    const guard = rotationGuard(parseOptions({ upstream: { tokenUrl: callFor('rt-1').url }, store }), upstream.send);
    const refreshing = guard.refresh(callFor('rt-1'), 'rt-1');
    await flushed();
    upstream.answer(0, rotation('rt-2'));
    const first = await refreshing;
    expect(first.source).toBe('upstream');
    expect(store.size).toBe(0);
    const meanwhile = await guard.refresh(callFor('rt-1'), 'rt-1');
    expect(meanwhile.source).toBe('coalesced');
    expect(meanwhile.outcome).toBe(first.outcome);
    await first.settled;
    expect(store.size).toBeGreaterThan(0);
    const later = await guard.refresh(callFor('rt-1'), 'rt-1');
    expect(later.source).toBe('store');
    expect(later.outcome.kind === 'answered' && first.outcome.kind === 'answered' && later.outcome.body.equals(first.outcome.body)).toBe(true);
    expect(upstream.calls()).toBe(1);
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
    const upstream = heldUpstream();
    const guard = rotationGuard(parseOptions({ upstream: { tokenUrl: callFor('a-1').url }, store }), upstream.send);
    const refreshing = [guard.refresh(callFor('a-1'), 'a-1'), guard.refresh(callFor('b-1'), 'b-1')];
    for (let i = 0; i < 50 && upstream.calls() < 2; i++) await flushed();
    expect(upstream.calls()).toBe(2);
    upstream.answer(0, rotation('a-2'));
    upstream.answer(1, rotation('b-2'));
    const results = await Promise.all(refreshing);
    expect(results.map((result) => result.source)).toEqual(['upstream', 'upstream']);
    // Each refresh: its reply, when it was rotated and the lock's release in one batch, then its successor's link.
    expect(sent).toEqual(['set reply', 'set rotated', 'release lock', 'set pred', 'set reply', 'set rotated', 'release lock', 'set pred']);
    await Promise.all(results.map((result) => result.settled));
    guard.dispose();
  });
});
