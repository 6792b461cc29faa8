import { afterEach, describe, expect, it, vi } from 'vitest';
import { FIRST_PROBE_MS, MAX_PROBE_MS, type StoreOperation, StoreHealth } from '../../src/rotation/store-health.js';
import { openReply, sealReplyValue } from '../../src/rotation/reply-cipher.js';
import { type GuardStores, plainMemoryStore, probe, StoreSession, StoreTimeoutError } from '../../src/rotation/store-session.js';
import { answered } from '../../src/upstream.js';
import { MemoryStore, type NinjaAuthStore, type StoreBatchOperation } from '../../src/index.js';

afterEach(() => {
  vi.useRealTimers();
});

interface Report {
  readonly operation: StoreOperation;
  readonly error: unknown;
  readonly opensEpisode: boolean;
}

/** The stores of a guard around `primary`, with a clock the test moves, and every failure report kept. */
function guardStores(primary: NinjaAuthStore, timeoutMs = 100) {
  let clock = 1_000_000;
  const reports: Report[] = [];
  const now = (): number => clock;
  const stores: GuardStores = {
    primary,
    local: new MemoryStore({ now }),
    // Through batches whatever the primary is: these tests are about them.
    memory: undefined,
    health: new StoreHealth((operation, error, opensEpisode) => reports.push({ operation, error, opensEpisode }), now),
    timeoutMs,
  };
  return { stores, reports, advance: (ms: number) => (clock += ms), session: () => new StoreSession(stores) };
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

/** A store that fails while `down` is set, and counts the calls that reached it. */
function switchableStore() {
  const memory = new MemoryStore();
  const state = { down: true, calls: 0 };
  const guard = <T>(answer: () => T): Promise<T> => {
    state.calls++;
    return state.down ? Promise.reject(new Error('connection refused')) : Promise.resolve(answer());
  };
  const store: NinjaAuthStore = {
    get: (key) => guard(() => memory.get(key)),
    set: (key, value, ttlMs) => guard(() => memory.set(key, value, ttlMs)),
    setIfAbsent: (key, value, ttlMs) => guard(() => memory.setIfAbsent(key, value, ttlMs)),
    deleteIfEquals: (key, value) => guard(() => memory.deleteIfEquals(key, value)),
  };
  return { store, memory, state };
}

describe('a request’s store session', () => {
  it('sends a batch all at once, and reads what was written, skipping keys left out', async () => {
    const { store, memory, waiting } = heldStore();
    const s = guardStores(store).session();
    const written = s.setAll([['a', '1', 10_000], undefined, ['b', '2', 10_000]]);
    expect(waiting).toHaveLength(2);
    waiting.splice(0).forEach((answer) => answer());
    await written;
    expect(memory.get('a')).toBe('1');
    const read = s.getAll(['a', undefined, 'b', 'missing']);
    await Promise.resolve();
    expect(waiting).toHaveLength(3);
    waiting.splice(0).forEach((answer) => answer());
    expect(await read).toEqual(['1', undefined, '2', undefined]);
  });

  it('writes go to local memory too, and a key the shared store lacks is read from there', async () => {
    const { store, memory } = heldStore();
    const { stores, session } = guardStores({ ...store, get: (key) => memory.get(key), set: (key, value, ttlMs) => memory.set(key, value, ttlMs) });
    await session().setAll([['a', '1', 10_000]]);
    expect(stores.local?.get('a')).toBe('1');
    memory.shutdown();
    expect(await session().getAll(['a'])).toEqual(['1']);
  });

  it('a failure in a batch is reported once, as the operation that failed; the request goes on in local memory', async () => {
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
    const { stores, reports, session } = guardStores(broken);
    stores.local?.set('b', 'local', 10_000);
    const s = session();
    expect(await s.getAll(['a', 'b', 'c'])).toEqual([undefined, 'local', undefined]);
    expect(calls).toBe(1);
    expect(s.onPrimary).toBe(false);
    expect(await s.acquire('lock', 'me', 1000)).toBeUndefined();
    await s.setAll([['d', '4', 10_000]]);
    expect(stores.local?.get('d')).toBe('4');
    expect(reports).toEqual([{ operation: 'get', error: new Error('connection lost'), opensEpisode: true }]);
  });

  it('a batch that never answers ends at the deadline, as a failure', async () => {
    vi.useFakeTimers();
    const { store } = heldStore();
    const { reports, session } = guardStores(store, 50);
    let read: Array<string | undefined> | undefined;
    void Promise.resolve(session().getAll(['a', 'b'])).then((values) => (read = values));
    await vi.advanceTimersByTimeAsync(49);
    expect(read).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(read).toEqual([undefined, undefined]);
    expect(reports).toHaveLength(1);
    expect(reports[0]!.error).toBeInstanceOf(StoreTimeoutError);
    expect(reports[0]!.operation).toBe('get');
  });

  it('releases its lock after publishing the answer, in that order, and only a lock it took', async () => {
    const order: string[] = [];
    const memory = new MemoryStore();
    const recording: NinjaAuthStore = {
      get: (key) => memory.get(key),
      set: (key, value, ttlMs) => {
        order.push(`set ${key}`);
        memory.set(key, value, ttlMs);
      },
      setIfAbsent: (key, value, ttlMs) => memory.setIfAbsent(key, value, ttlMs),
      deleteIfEquals: (key, value) => {
        order.push(`delete ${key}`);
        memory.deleteIfEquals(key, value);
      },
    };
    const { session } = guardStores(recording);
    await session().release('lock', 'me', ['answer', 'x', 1000]);
    expect(order).toEqual([]);
    const s = session();
    expect(await s.acquire('lock', 'me', 1000)).toBe(true);
    await s.release('lock', 'me', ['answer', 'x', 1000]);
    expect(order).toEqual(['set answer', 'delete lock']);
    expect(memory.get('lock')).toBeUndefined();
  });
});

describe('a store with batch', () => {
  /** A store whose batch runs each operation on a memory store, and that records every call the session made. */
  function batchingStore() {
    const memory = new MemoryStore();
    const calls: string[] = [];
    const run = ([method, key, ...args]: StoreBatchOperation): string | true | undefined => {
      if (method === 'get') return memory.get(key);
      if (method === 'setIfAbsentOrGet') return memory.setIfAbsentOrGet(key, args[0] as string, args[1] as number);
      if (method === 'set') memory.set(key, args[0] as string, args[1] as number);
      else memory.deleteIfEquals(key, args[0] as string);
      return undefined;
    };
    const store: NinjaAuthStore = {
      get: (key) => (calls.push(`get ${key}`), memory.get(key)),
      set: (key, value, ttlMs) => (calls.push(`set ${key}`), memory.set(key, value, ttlMs)),
      setIfAbsent: (key, value, ttlMs) => (calls.push(`setIfAbsent ${key}`), memory.setIfAbsent(key, value, ttlMs)),
      setIfAbsentOrGet: (key, value, ttlMs) => (calls.push(`setIfAbsentOrGet ${key}`), memory.setIfAbsentOrGet(key, value, ttlMs)),
      getMany: (keys) => (calls.push(`getMany ${keys.join(' ')}`), keys.map((key) => memory.get(key))),
      deleteIfEquals: (key, value) => (calls.push(`deleteIfEquals ${key}`), memory.deleteIfEquals(key, value)),
      batch: async (operations) => (calls.push(`batch ${operations.map(([method, key]) => `${method} ${key}`).join(', ')}`), operations.map(run)),
    };
    return { store, calls, memory };
  }

  it('gets every batch of two operations or more as one call, in order; an operation alone as its method', async () => {
    const { store, calls } = batchingStore();
    const { session } = guardStores(store);
    await session().setAll([['reply', 'r', 1000], undefined, ['rotated', '1', 1000]]);
    const s = session();
    expect(await s.begin(['lock', 'me', 1000], ['reply', undefined, 'rotated', 'missing'])).toEqual({ lock: true, values: ['r', undefined, '1', undefined] });
    await s.setAll([['pred', 'p', 1000]]);
    await s.release('lock', 'me', ['answer', 'a', 1000], [['sealed', '1', 1000]]);
    expect(await session().acquire('lock', 'other', 1000)).toBe(true);
    expect(await session().get('answer')).toBe('a');
    expect(calls).toEqual([
      'batch set reply, set rotated',
      'batch setIfAbsentOrGet lock, get reply, get rotated, get missing',
      'set pred',
      'batch set sealed, set answer, deleteIfEquals lock',
      'setIfAbsentOrGet lock',
      'get answer',
    ]);
  });

  it('a batch that fails is one failure, and the request goes on in local memory', async () => {
    const { store } = batchingStore();
    store.batch = () => Promise.reject(new Error('connection reset'));
    const { session, reports } = guardStores(store);
    const s = session();
    await s.setAll([['reply', 'r', 1000], ['rotated', '1', 1000]]);
    expect(reports.map((r) => r.operation)).toEqual(['set']);
    expect(s.onPrimary).toBe(false);
    expect(await s.getAll(['reply', 'rotated'])).toEqual(['r', '1']);
  });
});

describe('the order a batch goes out in', () => {
  /** An async store that records the order its methods were called in; `getMany` and `setIfAbsentOrGet` optional. */
  function recordingStore(withTakeOrRead: boolean) {
    const memory = new MemoryStore();
    const calls: string[] = [];
    const later = <T>(value: T): Promise<T> => Promise.resolve(value);
    const store: NinjaAuthStore = {
      get: (key) => (calls.push(`get ${key}`), later(memory.get(key))),
      set: (key, value, ttlMs) => (calls.push(`set ${key}`), later(memory.set(key, value, ttlMs))),
      setIfAbsent: (key, value, ttlMs) => (calls.push(`setIfAbsent ${key}`), later(memory.setIfAbsent(key, value, ttlMs))),
      getMany: (keys) => (calls.push(`getMany ${keys.join(' ')}`), later(keys.map((key) => memory.get(key)))),
      deleteIfEquals: (key, value) => (calls.push(`deleteIfEquals ${key}`), later(memory.deleteIfEquals(key, value))),
      ...(withTakeOrRead ? { setIfAbsentOrGet: (key: string, value: string, ttlMs: number) => (calls.push(`setIfAbsentOrGet ${key}`), later(memory.setIfAbsentOrGet(key, value, ttlMs))) } : {}),
    };
    return { store, calls, memory };
  }

  it('the lock attempt goes before the reads, so they see what a previous holder stored before letting go', async () => {
    for (const withTakeOrRead of [true, false]) {
      const { store, calls, memory } = recordingStore(withTakeOrRead);
      memory.set('reply', 'r', 1000);
      const { session } = guardStores(store);
      expect(await session().begin(['lock', 'me', 1000], ['reply', undefined, 'sealed'])).toEqual({ lock: true, values: ['r', undefined, undefined] });
      expect(calls).toEqual(withTakeOrRead ? ['setIfAbsentOrGet lock', 'getMany reply sealed'] : ['setIfAbsent lock', 'getMany lock reply sealed']);
      calls.length = 0;
      expect(await session().begin(['lock', 'other', 1000], ['reply', 'sealed'])).toEqual({ lock: 'me', values: ['r', undefined] });
    }
  });

  it('a batch with nothing to do asks the store nothing', async () => {
    const { store, calls } = recordingStore(true);
    const { session } = guardStores(store);
    expect(await session().getAll([undefined, undefined])).toEqual([undefined, undefined]);
    await session().setAll([undefined]);
    expect(calls).toEqual([]);
  });

  it('a held lock is released with the writes it guards, even after another request opened a failure episode', async () => {
    const { store, calls, memory } = recordingStore(true);
    const { session, stores } = guardStores(store);
    const holder = session();
    expect(await holder.acquire('lock', 'me', 1000)).toBe(true);
    stores.health.failed('get', new Error('another request saw the store fail'));
    expect(holder.onPrimary).toBe(false);
    calls.length = 0;
    await holder.release('lock', 'me', undefined, [['reply', 'r', 1000]]);
    expect(calls).toEqual(['set reply', 'deleteIfEquals lock']);
    expect(memory.get('reply')).toBe('r');
    expect(memory.get('lock')).toBeUndefined();
  });
});

describe('taking a lock', () => {
  it('a refused lock tells whose it is, atomically with setIfAbsentOrGet, else by a read sent along', async () => {
    const memory = new MemoryStore();
    const withoutTakeOrRead: NinjaAuthStore = {
      get: (key) => memory.get(key),
      set: (key, value, ttlMs) => memory.set(key, value, ttlMs),
      setIfAbsent: (key, value, ttlMs) => memory.setIfAbsent(key, value, ttlMs),
      deleteIfEquals: (key, value) => memory.deleteIfEquals(key, value),
    };
    for (const store of [new MemoryStore(), withoutTakeOrRead]) {
      const { session } = guardStores(store);
      expect(await session().acquire('lock', 'holder-a', 1000)).toBe(true);
      expect(await session().acquire('lock', 'holder-b', 1000)).toBe('holder-a');
    }
  });
});

describe('a store fed wrongly', () => {
  it('values that are not strings read as absent (or as local memory has them)', async () => {
    const odd: NinjaAuthStore = {
      get: (key) => ({ a: 5, b: { v: 1 }, c: null })[key] as never,
      set: () => undefined,
      setIfAbsent: () => true,
      deleteIfEquals: () => undefined,
    };
    const { stores, session } = guardStores(odd);
    stores.local?.set('b', 'local', 10_000);
    expect(await session().getAll(['a', 'b', 'c'])).toEqual([undefined, 'local', undefined]);
  });

  it('a setIfAbsentOrGet that answers like setIfAbsent (false) is a refusal by an unknown holder', async () => {
    const memory = new MemoryStore();
    const confused: NinjaAuthStore = {
      get: (key) => memory.get(key),
      set: (key, value, ttlMs) => memory.set(key, value, ttlMs),
      setIfAbsent: (key, value, ttlMs) => memory.setIfAbsent(key, value, ttlMs),
      setIfAbsentOrGet: ((key: string, value: string, ttlMs: number) => memory.setIfAbsent(key, value, ttlMs)) as never,
      deleteIfEquals: (key, value) => memory.deleteIfEquals(key, value),
    };
    const { session } = guardStores(confused);
    expect(await session().acquire('lock', 'a', 1000)).toBe(true);
    expect(await session().acquire('lock', 'b', 1000)).toBe('');
  });

  it('a probe whose get throws at once is a failed probe, not an exception', () => {
    const throwing: NinjaAuthStore = {
      get: () => {
        throw new Error('not connected');
      },
      set: () => undefined,
      setIfAbsent: () => true,
      deleteIfEquals: () => undefined,
    };
    const { stores, reports, advance } = guardStores(throwing);
    stores.health.failed('get', new Error('down'));
    advance(FIRST_PROBE_MS);
    expect(stores.health.probeDue()).toBe(true);
    expect(() => probe(stores, () => undefined)).not.toThrow();
    expect(reports.at(-1)).toMatchObject({ operation: 'get', opensEpisode: false, error: new Error('not connected') });
    expect(stores.health.usable).toBe(false);
    advance(2 * FIRST_PROBE_MS - 1);
    expect(stores.health.probeDue()).toBe(false);
    advance(1);
    expect(stores.health.probeDue()).toBe(true);
  });
});

describe('a failure episode', () => {
  it('one onStoreError per episode: requests skip the failing store instead of each waiting on it', async () => {
    const { store, state } = switchableStore();
    const { reports, session } = guardStores(store);
    await session().getAll(['a']);
    const callsAfterFailure = state.calls;
    for (let i = 0; i < 5; i++) {
      const s = session();
      expect(s.onPrimary).toBe(false);
      expect(await s.getAll(['a'])).toEqual([undefined]);
    }
    expect(state.calls).toBe(callsAfterFailure);
    expect(reports.filter((r) => r.opensEpisode)).toHaveLength(1);
  });

  it('probes at most once per backoff step, doubling up to the cap; an answer ends the episode', async () => {
    const { store, state } = switchableStore();
    const { stores, reports, advance, session } = guardStores(store);
    await session().getAll(['a']);
    const probes = async (): Promise<number> => {
      const before = state.calls;
      for (let i = 0; i < 3; i++) if (stores.health.probeDue()) probe(stores, () => undefined);
      await new Promise((resolve) => setImmediate(resolve));
      return state.calls - before;
    };
    expect(await probes()).toBe(0);
    let step = FIRST_PROBE_MS;
    for (let i = 0; i < 6; i++) {
      advance(step - 1);
      expect(await probes()).toBe(0);
      advance(1);
      expect(await probes()).toBe(1);
      step = Math.min(step * 2, MAX_PROBE_MS);
    }
    expect(step).toBe(MAX_PROBE_MS);
    expect(reports.filter((r) => r.opensEpisode)).toHaveLength(1);
    expect(reports.filter((r) => !r.opensEpisode)).toHaveLength(6);

    state.down = false;
    advance(MAX_PROBE_MS);
    expect(await probes()).toBe(1);
    expect(stores.health.usable).toBe(true);
    const s = session();
    expect(s.onPrimary).toBe(true);
    await s.setAll([['k', 'v', 1000]]);
    expect(await session().getAll(['k'])).toEqual(['v']);

    state.down = true;
    await session().getAll(['k']);
    expect(reports.filter((r) => r.opensEpisode)).toHaveLength(2);
  });

  it('a probe that hangs counts as a failure at the deadline, and nobody waits on it', async () => {
    vi.useFakeTimers();
    const never: NinjaAuthStore = { get: () => new Promise(() => undefined), set: () => undefined, setIfAbsent: () => true, deleteIfEquals: () => undefined };
    const { stores, reports, advance } = guardStores(never, 50);
    stores.health.failed('set', new Error('down'));
    advance(FIRST_PROBE_MS);
    expect(stores.health.probeDue()).toBe(true);
    probe(stores, () => undefined);
    expect(stores.health.probeDue()).toBe(false);
    await vi.advanceTimersByTimeAsync(50);
    expect(reports.at(-1)).toMatchObject({ operation: 'get', opensEpisode: false });
    expect(reports.at(-1)!.error).toBeInstanceOf(StoreTimeoutError);
    expect(stores.health.usable).toBe(false);
  });
});

describe('a sealed reply written through a session', () => {
  it('reaches the local memory as bytes and a shared store as its text; both read back that text, which opens', async () => {
    const { store: shared, memory, state } = switchableStore();
    state.down = false;
    const written: string[] = [];
    const recording: NinjaAuthStore = { ...shared, set: (key, value, ttlMs) => (written.push(value), shared.set(key, value, ttlMs)) };
    const { stores, session } = guardStores(recording);
    const answer = answered(200, { 'content-type': 'application/json' }, Buffer.from(`{"refresh_token":"rt-next","id_token":"${'e'.repeat(900)}"}`));
    const sealed = sealReplyValue(answer, 'rt-presented', 'request-key');
    await session().setAll([['reply:{t}:r', sealed, 10_000]]);
    expect(written).toEqual([sealed.text]);
    expect(memory.get('reply:{t}:r')).toBe(sealed.text);
    const local = stores.local!;
    expect(local.get('reply:{t}:r')).toBe(sealed.text);
    // The local copy counts the ciphertext's bytes, not its base64url characters.
    expect(local.bytes).toBe('reply:{t}:r'.length + sealed.head.length + sealed.bytes.length + 120);
    expect(openReply(local.get('reply:{t}:r')!, 'rt-presented', 'request-key')!.body.equals(answer.body)).toBe(true);
  });

  it('reaches a memory store that is the configured store as bytes too', async () => {
    const primary = new MemoryStore();
    const stores: GuardStores = { primary, local: undefined, memory: undefined, health: new StoreHealth(() => undefined), timeoutMs: 100 };
    const sealed = sealReplyValue(answered(200, {}, Buffer.from('x'.repeat(1_000))), 'rt-presented', 'request-key');
    await new StoreSession(stores).setAll([['reply:{t}:r', sealed, 10_000]]);
    expect(primary.get('reply:{t}:r')).toBe(sealed.text);
    expect(primary.bytes).toBe('reply:{t}:r'.length + sealed.head.length + sealed.bytes.length + 120);
    primary.shutdown();
  });
});

describe('a memory store as the configured store', () => {
  const storesOf = (primary: MemoryStore): GuardStores => ({ primary, local: undefined, memory: plainMemoryStore(primary), health: new StoreHealth(() => undefined), timeoutMs: 100 });

  it('answers reads and writes at once, with no promise anywhere', () => {
    const primary = new MemoryStore();
    expect(plainMemoryStore(primary)).toBe(primary);
    const session = new StoreSession(storesOf(primary));
    expect(session.setAll([['a', '1', 10_000], undefined, ['b', '2', 10_000]])).toBeUndefined();
    expect(session.begin(undefined, ['a', undefined, 'b', 'c'])).toEqual({ lock: undefined, values: ['1', undefined, '2', undefined] });
    expect(session.getAll(['b', undefined])).toEqual(['2', undefined]);
    expect(session.release('lock', 'me', undefined, [['c', '3', 10_000]])).toBeUndefined();
    expect(primary.get('c')).toBe('3');
    primary.shutdown();
  });

  it('one whose methods were replaced (here by asynchronous ones) is a store like any other, its promises awaited', async () => {
    const primary = new MemoryStore();
    const plain = { get: primary.get.bind(primary), set: primary.set.bind(primary) };
    Object.assign(primary, {
      get: async (key: string) => plain.get(key),
      set: async (key: string, value: string, ttlMs: number) => plain.set(key, value, ttlMs),
    });
    expect(plainMemoryStore(primary)).toBeUndefined();
    const session = new StoreSession(storesOf(primary));
    const writing = session.setAll([['a', '1', 10_000]]);
    expect(writing).toBeInstanceOf(Promise);
    await writing;
    const reading = session.getAll(['a']);
    expect(reading).toBeInstanceOf(Promise);
    expect(await reading).toEqual(['1']);
    primary.shutdown();
  });
});
