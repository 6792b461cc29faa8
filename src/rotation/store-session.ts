import { isThenable } from '../hooks.js';
import { MemoryStore } from '../stores/memory-store.js';
import { keyText, type StoreKey } from '../stores/store-key.js';
import type { NinjaAuthStore, StoreBatchOperation } from '../types.js';
import type { SealedReply } from './reply-cipher.js';
import type { StoreHealth, StoreOperation } from './store-health.js';

/** A value now, or a promise of it: what a store that answers synchronously (the memory store) gives at once. */
export type Maybe<T> = T | Promise<T>;

const then = <T, R>(value: Maybe<T>, next: (settled: T) => R): Maybe<R> => (value instanceof Promise ? value.then(next) : next(value));
const done = (value: Maybe<unknown>): Promise<void> | undefined => (value instanceof Promise ? value.then(() => undefined) : undefined);

/** One `set` of a batch: key, value and time to live. */
export type TextWrite = readonly [key: StoreKey, value: string, ttlMs: number];
/** A `set` whose value may be a sealed reply: a memory store takes its bytes, any other store its text. */
export type StoreWrite = readonly [key: StoreKey, value: string | SealedReply, ttlMs: number];

/**
 * One operation of a batch as the session holds it: a store batch operation whose `set` may carry a sealed reply,
 * or the `setIfAbsent` that takes a lock in a store with neither `batch` nor `setIfAbsentOrGet`.
 */
type Step =
  | readonly ['get', key: string]
  | readonly ['set', key: string, value: string | SealedReply, ttlMs: number]
  | readonly ['setIfAbsentOrGet', key: string, value: string, ttlMs: number]
  | readonly ['setIfAbsent', key: string, value: string, ttlMs: number]
  | readonly ['deleteIfEquals', key: string, value: string];

function setOn(store: NinjaAuthStore, [key, value, ttlMs]: StoreWrite): Promise<void> | void {
  if (store instanceof MemoryStore && typeof key !== 'string') {
    return typeof value === 'string' ? store.write(key, value, ttlMs) : store.writeBytes(key, value.head, value.bytes, ttlMs);
  }
  const text = keyText(key);
  if (typeof value === 'string') return store.set(text, value, ttlMs);
  if (store instanceof MemoryStore) return store.setBytes(text, value.head, value.bytes, ttlMs);
  return store.set(text, value.text, ttlMs);
}

/** A key's value in a memory store of the guard's (the configured one, or the local one beside a shared store). */
const readOn = (memory: MemoryStore, key: StoreKey): string | undefined => (typeof key === 'string' ? memory.get(key) : memory.read(key));

/** The stores of one router's guard, shared by all its requests. */
export interface GuardStores {
  /** The configured store. */
  readonly primary: NinjaAuthStore;
  /**
   * This process's own memory beside a shared store: every write goes to it too, a key the shared store lacks is
   * read from it, and while the shared store fails it is the only store. Absent when the primary is local itself.
   */
  readonly local: MemoryStore | undefined;
  /**
   * The primary itself when it is a plain memory store ({@link plainMemoryStore}, decided once for the guard):
   * read and written directly, without batches or promises. `undefined`: every store goes through batches.
   */
  readonly memory: MemoryStore | undefined;
  readonly health: StoreHealth;
  /** The longest a batch of operations may take before it counts as a failure. */
  readonly timeoutMs: number;
}

/** The key a probe reads: any answer, even "no such key", shows that the store is back. */
const PROBE_KEY = 'probe';

/**
 * One request's view of the stores, failing over to local memory: every batch of operations is bounded by
 * `timeoutMs`; a failure, or an episode that another request opened, sends the rest of the request to the local
 * store. Operations go out in batches, all at once — as one `batch` call where the store has it — so a network
 * store answers them in one round trip, and a store that answers synchronously (the memory store) costs no
 * promise per operation.
 */
export class StoreSession {
  #onPrimary: boolean;
  #holdsLock = false;

  constructor(private readonly stores: GuardStores) {
    this.#onPrimary = stores.health.usable;
  }

  /** Whether the configured store is still in use for this request. */
  get onPrimary(): boolean {
    return this.#onPrimary && this.stores.health.usable;
  }

  /** Reads the keys at once; a key left `undefined` is not read and reads as `undefined`. */
  getAll(keys: ReadonlyArray<StoreKey | undefined>): Maybe<Array<string | undefined>> {
    const { memory } = this.stores;
    if (memory !== undefined && this.onPrimary) return readFrom(memory, keys);
    const reads = readSteps(keys);
    if (!this.onPrimary) return reads.values(undefined, this.stores.local);
    return then(this.#batch('get', reads.steps), (results) => reads.values(results, this.stores.local));
  }

  async get(key: StoreKey): Promise<string | undefined> {
    const [value] = await this.getAll([key]);
    return value;
  }

  /** Writes the entries at once, to local memory too; an entry left `undefined` is skipped. `undefined` once done. */
  setAll(writes: ReadonlyArray<StoreWrite | undefined>): Promise<void> | undefined {
    const { memory } = this.stores;
    if (memory !== undefined && this.onPrimary) {
      for (const write of writes) if (write !== undefined) setOn(memory, write);
      return undefined;
    }
    const steps = this.#written(writes);
    return this.onPrimary && steps.length > 0 ? done(this.#batch('set', steps)) : undefined;
  }

  /**
   * Takes the lock (when `lock` is given) and reads the keys, in one batch, so one round trip: the lock first, so
   * that the reads see whatever a previous holder wrote before it let go. `lock` is as {@link acquire} answers.
   */
  begin(lock: TextWrite | undefined, keys: ReadonlyArray<StoreKey | undefined>): Maybe<{ lock: true | string | undefined; values: Array<string | undefined> }> {
    const { memory } = this.stores;
    if (lock === undefined && memory !== undefined && this.onPrimary) return { lock: undefined, values: readFrom(memory, keys) };
    const reads = readSteps(keys);
    if (!this.onPrimary) return { lock: undefined, values: reads.values(undefined, this.stores.local) };
    const locking = lock === undefined ? [] : this.#lockSteps(lock);
    return then(this.#batch(lock === undefined ? 'get' : 'lock', [...locking, ...reads.steps]), (results) => {
      const values = reads.values(results?.slice(locking.length), this.stores.local);
      if (lock === undefined || results === undefined) return { lock: undefined, values };
      return { lock: this.#lockTaken(locking, results), values };
    });
  }

  /**
   * Takes a lock in the shared store: `true` when taken, else the value of whoever holds it (`''` when it could not
   * be read), or `undefined` when this request is not on the shared store (local memory needs no lock: one
   * process coalesces in memory).
   */
  async acquire(key: StoreKey, value: string, ttlMs: number): Promise<true | string | undefined> {
    if (!this.onPrimary) return undefined;
    const locking = this.#lockSteps([key, value, ttlMs]);
    const results = await this.#batch('lock', locking);
    return results === undefined || !this.#onPrimary ? undefined : this.#lockTaken(locking, results);
  }

  /**
   * Releases a lock this request took, after `writes` (to local memory too) and `publish` (the answer for those
   * who waited on it): all in one batch, in this order, so a waiter never finds the lock free before the reply or
   * the answer is there. A lock taken before the store failed is still released, the store permitting.
   * `undefined` once done.
   */
  release(key: StoreKey, value: string, publish: TextWrite | undefined, writes: ReadonlyArray<StoreWrite | undefined> = []): Promise<void> | undefined {
    if (!this.#holdsLock) return this.setAll(writes);
    const steps = this.#written(writes);
    this.#holdsLock = false;
    if (publish !== undefined) steps.push(['set', keyText(publish[0]), publish[1], publish[2]]);
    // The lock is in the shared store, so what it guards goes there with its release, even when this request has
    // stopped using the store since: a waiter elsewhere that finds the lock free must find the reply too.
    steps.push(['deleteIfEquals', keyText(key), value]);
    return done(this.#batch(steps.length > 1 ? 'set' : 'unlock', steps));
  }

  /** The steps that write `writes` to the shared store, once they are in local memory. */
  #written(writes: ReadonlyArray<StoreWrite | undefined>): Step[] {
    const { local } = this.stores;
    const steps: Step[] = [];
    for (const write of writes) {
      if (write === undefined) continue;
      if (local !== undefined) setOn(local, write);
      steps.push(['set', keyText(write[0]), write[1], write[2]]);
    }
    return steps;
  }

  /** One atomic step where the store can (`batch`, `setIfAbsentOrGet`); else the attempt, and a read of the holder with it. */
  #lockSteps([key, value, ttlMs]: TextWrite): Step[] {
    const { primary } = this.stores;
    const text = keyText(key);
    return typeof primary.batch === 'function' || typeof primary.setIfAbsentOrGet === 'function'
      ? [['setIfAbsentOrGet', text, value, ttlMs]]
      : [['setIfAbsent', text, value, ttlMs], ['get', text]];
  }

  #lockTaken(locking: readonly Step[], results: readonly unknown[]): true | string {
    const taken = locking.length === 1 ? lockAnswer(results[0]) : results[0] === true ? true : typeof results[1] === 'string' ? results[1] : '';
    if (taken === true) this.#holdsLock = true;
    return taken;
  }

  /**
   * The results, one per step, or `undefined` when the store failed (reported, and the request goes on locally):
   * at once when the store answered at once.
   */
  #batch(operation: StoreOperation, steps: readonly Step[]): Maybe<unknown[] | undefined> {
    if (steps.length === 0) return [];
    let dispatched: Dispatched;
    try {
      dispatched = dispatch(this.stores.primary, steps);
    } catch (error) {
      this.#fail(operation, error);
      return undefined;
    }
    const { started, results } = dispatched;
    if (!started.some(isThenable)) return results(started);
    return bounded(Promise.all(started), this.stores.timeoutMs).then(results, (error: unknown) => {
      this.#fail(operation, error);
      return undefined;
    });
  }

  #fail(operation: StoreOperation, error: unknown): void {
    this.#onPrimary = false;
    this.stores.health.failed(operation, error);
  }
}

/**
 * The store, when it is a `MemoryStore` as this package made it, which never throws and answers at once: not a
 * subclass, nor one whose methods were replaced (a wrapper that counts or delays), which go through batches
 * like any other store.
 */
export function plainMemoryStore(store: NinjaAuthStore): MemoryStore | undefined {
  const plain = Object.getPrototypeOf(store) === MemoryStore.prototype && !['get', 'getMany', 'set', 'setBytes'].some((method) => Object.hasOwn(store, method));
  return plain ? (store as MemoryStore) : undefined;
}

/** The keys' values in the memory store, at once; a key left `undefined` reads as `undefined`. */
const readFrom = (memory: MemoryStore, keys: ReadonlyArray<StoreKey | undefined>): Array<string | undefined> =>
  keys.map((key) => (key === undefined ? undefined : readOn(memory, key)));

/** The steps that read `keys` (an `undefined` key is not read), and the values back in the keys' places. */
function readSteps(keys: ReadonlyArray<StoreKey | undefined>): {
  steps: Step[];
  /** A key the store answered nothing for (or something other than a string: nothing the guard wrote) is read locally. */
  values: (results: readonly unknown[] | undefined, local: MemoryStore | undefined) => Array<string | undefined>;
} {
  const steps: Step[] = [];
  for (const key of keys) if (key !== undefined) steps.push(['get', keyText(key)]);
  return {
    steps,
    values: (results, local) => {
      let next = 0;
      return keys.map((key) => {
        if (key === undefined) return undefined;
        const value = results?.[next++];
        return typeof value === 'string' ? value : local === undefined ? undefined : readOn(local, key);
      });
    },
  };
}

interface Dispatched {
  /** What the store's methods returned: values or promises. */
  readonly started: unknown[];
  /** The steps' results in order, from what `started` settled to. */
  readonly results: (settled: readonly unknown[]) => unknown[];
}

/**
 * Starts the steps on the store, in their order: one `batch` call where it has one (but for a step alone that a
 * method does as well); else one call per step, the reads as one `getMany` — started where the first read
 * stands, so a lock attempt before them still goes first — where the store has it and there are two or more. A
 * throw leaves no started promise unhandled.
 */
function dispatch(store: NinjaAuthStore, steps: readonly Step[]): Dispatched {
  const { batch, getMany } = store;
  const single = steps.length === 1 && (steps[0]![0] !== 'setIfAbsentOrGet' || typeof store.setIfAbsentOrGet === 'function');
  if (typeof batch === 'function' && !single) {
    const operations = steps.map(batchOperation);
    return { started: [batch.call(store, operations)], results: ([answered]) => steps.map((_, i) => (Array.isArray(answered) ? answered[i] : undefined)) };
  }
  const reads = steps.filter((step) => step[0] === 'get');
  const readsAtOnce = typeof getMany === 'function' && reads.length >= 2;
  const started: unknown[] = [];
  /** Where each step's answer will be: the index of its call in `started`, and its place in the getMany's list. */
  const sources: Array<readonly [call: number, read: number]> = [];
  let manyAt = -1;
  let read = 0;
  try {
    for (const step of steps) {
      if (!readsAtOnce || step[0] !== 'get') {
        sources.push([started.length, -1]);
        started.push(startStep(store, step));
        continue;
      }
      if (manyAt < 0) {
        manyAt = started.length;
        started.push(getMany.call(store, reads.map(([, key]) => key)));
      }
      sources.push([manyAt, read++]);
    }
  } catch (error) {
    for (const result of started) if (isThenable(result)) Promise.resolve(result).catch(() => undefined);
    throw error;
  }
  return {
    started,
    results: (settled) =>
      sources.map(([call, at]) => {
        if (at < 0) return settled[call];
        const many = settled[call];
        return Array.isArray(many) ? many[at] : undefined;
      }),
  };
}

function startStep(store: NinjaAuthStore, step: Step): unknown {
  switch (step[0]) {
    case 'get':
      return store.get(step[1]);
    case 'set':
      return setOn(store, [step[1], step[2], step[3]]);
    case 'setIfAbsentOrGet':
      return store.setIfAbsentOrGet!(step[1], step[2], step[3]);
    case 'setIfAbsent':
      return store.setIfAbsent(step[1], step[2], step[3]);
    case 'deleteIfEquals':
      return store.deleteIfEquals(step[1], step[2]);
  }
}

function batchOperation(step: Step): StoreBatchOperation {
  if (step[0] === 'set') return typeof step[2] === 'string' ? ['set', step[1], step[2], step[3]] : ['set', step[1], step[2].text, step[3]];
  if (step[0] === 'setIfAbsent') return ['setIfAbsentOrGet', step[1], step[2], step[3]];
  return step;
}

/** Anything but `true` or a holder's value (a store that mistook it for setIfAbsent) is a refusal by someone unknown. */
const lockAnswer = (answer: unknown): true | string => (answer === true ? true : typeof answer === 'string' ? answer : '');

/** Asks the failing store one cheap question, without anyone waiting on the answer, and tells the health. */
export function probe(stores: GuardStores, onAnswered: () => void): void {
  let answer: unknown;
  try {
    answer = stores.primary.get(PROBE_KEY);
  } catch (error) {
    stores.health.probeFailed(error);
    return;
  }
  bounded(Promise.resolve(answer), stores.timeoutMs, true).then(
    () => {
      stores.health.probeAnswered();
      onAnswered();
    },
    (error: unknown) => stores.health.probeFailed(error),
  );
}

/** `pending`, or a {@link StoreTimeoutError} after `timeoutMs`: one timer and one promise per batch. */
function bounded<T>(pending: Promise<T>, timeoutMs: number, unref = false): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreTimeoutError(timeoutMs)), timeoutMs);
    if (unref) timer.unref();
    pending.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

export class StoreTimeoutError extends Error {
  override readonly name = 'StoreTimeoutError';
  readonly code = 'NINJA_AUTH_STORE_TIMEOUT';

  constructor(timeoutMs: number) {
    super(`ninja-auth: the store did not answer within ${timeoutMs} ms`);
  }
}
