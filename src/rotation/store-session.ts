import { isThenable } from '../hooks.js';
import type { NinjaAuthStore } from '../types.js';

/** One `set` of a batch: key, value and time to live. */
export type StoreWrite = readonly [key: string, value: string, ttlMs: number];

/**
 * One request's view of the store, failing open: every batch of operations is bounded by `timeoutMs`, and after
 * the first failure the store is bypassed for the rest of the request. The failure is reported once.
 * Operations go out in batches, all at once, so a network store answers them in one round trip, and a store
 * that answers synchronously (the memory store) costs no promise per operation.
 */
export class StoreSession {
  #failed = false;

  constructor(
    private readonly store: NinjaAuthStore,
    private readonly timeoutMs: number,
    private readonly reportFailure: (error: unknown) => void,
  ) {}

  get failed(): boolean {
    return this.#failed;
  }

  /** Reads the keys at once; a key left `undefined` is not read and reads as `undefined`. */
  getAll(keys: ReadonlyArray<string | undefined>): Promise<Array<string | undefined>> {
    return this.#batch(keys.map((key) => (key === undefined ? undefined : () => this.store.get(key))));
  }

  get(key: string): Promise<string | undefined> {
    return this.#batch([() => this.store.get(key)]).then(([value]) => value);
  }

  /** Writes the entries at once; an entry left `undefined` is skipped. */
  async setAll(writes: ReadonlyArray<StoreWrite | undefined>): Promise<void> {
    await this.#batch(writes.map((write) => (write === undefined ? undefined : () => this.store.set(...write))));
  }

  /** `true` when taken, `false` when another holds it, `undefined` when the store failed. */
  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean | undefined> {
    const [taken] = await this.#batch([() => this.store.setIfAbsent(key, value, ttlMs)]);
    return taken;
  }

  async deleteIfEquals(key: string, value: string): Promise<void> {
    await this.#batch([() => this.store.deleteIfEquals(key, value)]);
  }

  #batch<T>(operations: ReadonlyArray<(() => T | PromiseLike<T>) | undefined>): Promise<Array<T | undefined>> {
    const results: Array<T | PromiseLike<T> | undefined> = [];
    let pending = false;
    for (const operation of operations) {
      const result = operation === undefined ? undefined : this.#start(operation);
      pending ||= isThenable(result);
      results.push(result);
    }
    return pending ? this.#bounded(Promise.all(results)) : Promise.resolve(results as Array<T | undefined>);
  }

  #start<T>(operation: () => T | PromiseLike<T>): T | PromiseLike<T> | undefined {
    if (this.#failed) return undefined;
    try {
      return operation();
    } catch (error) {
      return this.#fail(error);
    }
  }

  #fail(error: unknown): undefined {
    if (!this.#failed) {
      this.#failed = true;
      this.reportFailure(error);
    }
    return undefined;
  }

  async #bounded<T>(pending: Promise<T[]>): Promise<Array<T | undefined>> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreTimeoutError(this.timeoutMs)), this.timeoutMs);
      });
      pending.catch(() => undefined);
      return await Promise.race([pending, expired]);
    } catch (error) {
      this.#fail(error);
      return [];
    } finally {
      clearTimeout(timer);
    }
  }
}

export class StoreTimeoutError extends Error {
  override readonly name = 'StoreTimeoutError';
  readonly code = 'NINJA_AUTH_STORE_TIMEOUT';

  constructor(timeoutMs: number) {
    super(`ninja-auth: the store did not answer within ${timeoutMs} ms`);
  }
}
