import { describe, expect, it } from 'vitest';
import { StoreSession, StoreTimeoutError } from '../../src/rotation/store-session.js';
import { MemoryStore, type NinjaAuthStore } from '../../src/index.js';

function session(store: NinjaAuthStore, timeoutMs = 100) {
  const failures: unknown[] = [];
  return { store: new StoreSession(store, timeoutMs, (error) => failures.push(error)), failures };
}

/** A store whose every operation waits for the test to let it answer, and counts how many wait at once. */
function heldStore() {
  const memory = new MemoryStore();
  const waiting: Array<() => void> = [];
  const hold = <T>(value: T): Promise<T> => new Promise((resolve) => waiting.push(() => resolve(value)));
  const store: NinjaAuthStore = {
    get: (key) => hold(memory.get(key)),
    set: (key, value, ttlMs) => hold(memory.set(key, value, ttlMs)),
    setIfAbsent: (key, value, ttlMs) => hold(memory.setIfAbsent(key, value, ttlMs)),
    deleteIfEquals: (key, value) => hold(memory.deleteIfEquals(key, value)),
  };
  return { store, memory, waiting };
}

describe('a request’s store session', () => {
  it('sends a batch all at once, and reads what was written, skipping keys left out', async () => {
    const { store, memory, waiting } = heldStore();
    const { store: s } = session(store);
    const written = s.setAll([['a', '1', 10_000], undefined, ['b', '2', 10_000]]);
    expect(waiting).toHaveLength(2);
    waiting.splice(0).forEach((answer) => answer());
    await written;
    expect(memory.get('a')).toBe('1');
    const read = s.getAll(['a', undefined, 'b', 'missing']);
    expect(waiting).toHaveLength(3);
    waiting.splice(0).forEach((answer) => answer());
    expect(await read).toEqual(['1', undefined, '2', undefined]);
  });

  it('one failure in a batch is reported once; the store is bypassed for the rest of the request', async () => {
    let calls = 0;
    const broken: NinjaAuthStore = {
      get: () => {
        calls++;
        throw new Error('connection lost');
      },
      set: () => Promise.reject(new Error('connection lost')),
      setIfAbsent: () => true,
      deleteIfEquals: () => undefined,
    };
    const { store: s, failures } = session(broken);
    expect(await s.getAll(['a', 'b', 'c'])).toEqual([undefined, undefined, undefined]);
    expect(calls).toBe(1);
    expect(s.failed).toBe(true);
    expect(await s.setIfAbsent('lock', 'me', 1000)).toBeUndefined();
    expect(failures).toHaveLength(1);
  });

  it('a batch that never answers ends at the deadline, as a failure', async () => {
    const { store } = heldStore();
    const { store: s, failures } = session(store, 50);
    const startedAt = Date.now();
    expect(await s.getAll(['a', 'b'])).toEqual([]);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(45);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(StoreTimeoutError);
  });
});
