import { isThenable } from '../hooks.js';
import { MemoryStore } from '../stores/memory-store.js';
import type { NinjaAuthStore } from '../types.js';
import type { SealedReply } from './reply-cipher.js';
import type { StoreHealth, StoreOperation } from './store-health.js';

/** One `set` of a batch: key, value and time to live. */
export type TextWrite = readonly [key: string, value: string, ttlMs: number];
/** A `set` whose value may be a sealed reply: a memory store takes its bytes, any other store its text. */
export type StoreWrite = readonly [key: string, value: string | SealedReply, ttlMs: number];

function setOn(store: NinjaAuthStore, [key, value, ttlMs]: StoreWrite): Promise<void> | void {
  if (typeof value === 'string') return store.set(key, value, ttlMs);
  if (store instanceof MemoryStore) return store.setBytes(key, value.head, value.bytes, ttlMs);
  return store.set(key, value.text, ttlMs);
}

/** The stores of one router's guard, shared by all its requests. */
export interface GuardStores {
  /** The configured store. */
  readonly primary: NinjaAuthStore;
  /**
   * This process's own memory beside a shared store: every write goes to it too, a key the shared store lacks is
   * read from it, and while the shared store fails it is the only store. Absent when the primary is local itself.
   */
  readonly local: MemoryStore | undefined;
  readonly health: StoreHealth;
  /** The longest a batch of operations may take before it counts as a failure. */
  readonly timeoutMs: number;
}

/** The key a probe reads: any answer, even "no such key", shows that the store is back. */
const PROBE_KEY = 'probe';

/**
 * One request's view of the stores, failing over to local memory: every batch of operations is bounded by
 * `timeoutMs`; a failure, or an episode that another request opened, sends the rest of the request to the local
 * store. Operations go out in batches, all at once, so a network store answers them in one round trip, and a
 * store that answers synchronously (the memory store) costs no promise per operation.
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
  async getAll(keys: ReadonlyArray<string | undefined>): Promise<Array<string | undefined>> {
    const { local } = this.stores;
    const fromLocal = (key: string | undefined): string | undefined => (key === undefined ? undefined : local?.get(key));
    if (!this.onPrimary) return keys.map(fromLocal);
    const { primary } = this.stores;
    const reads = readsOf(primary, keys);
    const results = await this.#batch<unknown>('get', reads.operations);
    if (results === undefined) return keys.map(fromLocal);
    const values = reads.values(results);
    // A store that answers something other than a string has nothing the guard wrote: it reads as absent.
    return keys.map((key, i) => (typeof values[i] === 'string' ? (values[i] as string) : fromLocal(key)));
  }

  async get(key: string): Promise<string | undefined> {
    const [value] = await this.getAll([key]);
    return value;
  }

  /** Writes the entries at once, to local memory too; an entry left `undefined` is skipped. */
  async setAll(writes: ReadonlyArray<StoreWrite | undefined>): Promise<void> {
    const { local, primary } = this.stores;
    if (local !== undefined) for (const write of writes) if (write !== undefined) setOn(local, write);
    if (this.onPrimary) await this.#batch('set', writes.map((write) => (write === undefined ? undefined : () => setOn(primary, write))));
  }

  /**
   * Takes the lock (when `lock` is given) and reads the keys, in one batch, so one round trip: the lock first, so
   * that the reads see whatever a previous holder wrote before it let go. `lock` is as {@link acquire} answers.
   */
  async begin(lock: TextWrite | undefined, keys: ReadonlyArray<string | undefined>): Promise<{ lock: true | string | undefined; values: Array<string | undefined> }> {
    const { local, primary } = this.stores;
    const fromLocal = (key: string | undefined): string | undefined => (key === undefined ? undefined : local?.get(key));
    if (!this.onPrimary) return { lock: undefined, values: keys.map(fromLocal) };
    const takeOrRead = primary.setIfAbsentOrGet;
    const lockOperations: Array<() => unknown> = lock === undefined
      ? []
      : typeof takeOrRead === 'function'
        ? [() => takeOrRead.call(primary, ...lock)]
        : [() => primary.setIfAbsent(...lock), () => primary.get(lock[0])];
    const reads = readsOf(primary, keys);
    const results = await this.#batch<unknown>(lock === undefined ? 'get' : 'lock', [...lockOperations, ...reads.operations]);
    if (results === undefined) return { lock: undefined, values: keys.map(fromLocal) };
    const values = reads.values(results.slice(lockOperations.length));
    const read = keys.map((key, i) => (typeof values[i] === 'string' ? (values[i] as string) : fromLocal(key)));
    if (lock === undefined) return { lock: undefined, values: read };
    const taken = lockOperations.length === 1 ? lockAnswer(results[0]) : results[0] === true ? true : typeof results[1] === 'string' ? results[1] : '';
    if (taken === true) this.#holdsLock = true;
    return { lock: taken, values: read };
  }

  /**
   * Takes a lock in the shared store: `true` when taken, else the value of whoever holds it (`''` when it could not
   * be read), or `undefined` when this request is not on the shared store (local memory needs no lock: one
   * process coalesces in memory).
   */
  async acquire(key: string, value: string, ttlMs: number): Promise<true | string | undefined> {
    if (!this.onPrimary) return undefined;
    const { primary } = this.stores;
    const takeOrRead = primary.setIfAbsentOrGet;
    let result: true | string | undefined;
    if (typeof takeOrRead === 'function') {
      const [answer] = (await this.#batch<unknown>('lock', [() => takeOrRead.call(primary, key, value, ttlMs)])) ?? [undefined];
      result = !this.#onPrimary ? undefined : lockAnswer(answer);
    } else {
      // The read goes out with the attempt, so that it sees the holder that refused it as often as can be.
      const [taken, held] = (await this.#batch<boolean | string | undefined>('lock', [() => primary.setIfAbsent(key, value, ttlMs), () => primary.get(key)])) ?? [];
      result = !this.#onPrimary || taken === undefined ? undefined : taken === true ? true : typeof held === 'string' ? held : '';
    }
    if (result === true) this.#holdsLock = true;
    return result;
  }

  /**
   * Releases a lock this request took, after writing `publish` (the answer for those who waited on it). Both go
   * out at once, in this order, so a waiter never finds the lock free before the answer is there. A lock taken
   * before the store failed is still released, the store permitting.
   */
  async release(key: string, value: string, publish: TextWrite | undefined): Promise<void> {
    if (!this.#holdsLock) return;
    this.#holdsLock = false;
    const { primary } = this.stores;
    if (publish !== undefined && this.onPrimary) {
      await this.#batch('set', [() => primary.set(...publish), () => primary.deleteIfEquals(key, value)]);
    } else {
      await this.#batch('unlock', [() => primary.deleteIfEquals(key, value)]);
    }
  }

  /** The results, or `undefined` when the store failed (reported, and the request goes on locally). */
  #batch<T>(operation: StoreOperation, operations: ReadonlyArray<(() => T | PromiseLike<T>) | undefined>): Promise<Array<T | undefined> | undefined> {
    const results: Array<T | PromiseLike<T> | undefined> = [];
    let pending = false;
    try {
      for (const start of operations) {
        const result = start?.();
        pending ||= isThenable(result);
        results.push(result);
      }
    } catch (error) {
      for (const result of results) if (isThenable(result)) Promise.resolve(result).catch(() => undefined);
      this.#fail(operation, error);
      return Promise.resolve(undefined);
    }
    if (!pending) return Promise.resolve(results as Array<T | undefined>);
    return bounded(Promise.all(results), this.stores.timeoutMs).then(
      (values) => values,
      (error: unknown) => {
        this.#fail(operation, error);
        return undefined;
      },
    );
  }

  #fail(operation: StoreOperation, error: unknown): void {
    this.#onPrimary = false;
    this.stores.health.failed(operation, error);
  }
}

/**
 * The operations that read `keys` (an `undefined` key is not read): one `getMany` where the store has it and there
 * are two keys or more, else one `get` each; `values` puts the answers back in the keys' places.
 */
function readsOf(store: NinjaAuthStore, keys: ReadonlyArray<string | undefined>): {
  operations: Array<(() => unknown) | undefined>;
  values: (results: readonly unknown[]) => readonly unknown[];
} {
  const wanted = keys.filter((key): key is string => key !== undefined);
  const { getMany } = store;
  if (typeof getMany !== 'function' || wanted.length < 2) {
    return { operations: keys.map((key) => (key === undefined ? undefined : () => store.get(key))), values: (results) => results };
  }
  return {
    operations: [() => getMany.call(store, wanted)],
    values: (results) => {
      const answered = Array.isArray(results[0]) ? (results[0] as unknown[]) : [];
      let next = 0;
      return keys.map((key) => (key === undefined ? undefined : answered[next++]));
    },
  };
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

/** `pending`, or a {@link StoreTimeoutError} after `timeoutMs`. */
async function bounded<T>(pending: Promise<T>, timeoutMs: number, unref = false): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeoutError(timeoutMs)), timeoutMs);
    if (unref) timer.unref();
  });
  pending.catch(() => undefined);
  try {
    return await Promise.race([pending, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export class StoreTimeoutError extends Error {
  override readonly name = 'StoreTimeoutError';
  readonly code = 'NINJA_AUTH_STORE_TIMEOUT';

  constructor(timeoutMs: number) {
    super(`ninja-auth: the store did not answer within ${timeoutMs} ms`);
  }
}
