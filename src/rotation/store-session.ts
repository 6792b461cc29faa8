import { isThenable } from '../hooks.js';
import type { NinjaAuthStore } from '../types.js';

/**
 * One request's view of the store, failing open: every operation is bounded by `timeoutMs`, and after the
 * first failure the store is bypassed for the rest of the request. The failure is reported once.
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

  get(key: string): Promise<string | undefined> {
    return this.#run(() => this.store.get(key));
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#run(() => this.store.set(key, value, ttlMs));
  }

  /** `true` when taken, `false` when another holds it, `undefined` when the store failed. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean | undefined> {
    return this.#run(() => this.store.setIfAbsent(key, value, ttlMs));
  }

  async deleteIfEquals(key: string, value: string): Promise<void> {
    await this.#run(() => this.store.deleteIfEquals(key, value));
  }

  async #run<T>(operation: () => Promise<T> | T): Promise<T | undefined> {
    if (this.#failed) return undefined;
    let result: PromiseLike<T> | T;
    try {
      result = operation();
    } catch (error) {
      return this.#fail(error);
    }
    // A store that answers synchronously (the memory store) needs no deadline.
    return isThenable(result) ? this.#bounded(Promise.resolve(result)) : result;
  }

  #fail(error: unknown): undefined {
    this.#failed = true;
    this.reportFailure(error);
    return undefined;
  }

  async #bounded<T>(pending: Promise<T>): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreTimeoutError(this.timeoutMs)), this.timeoutMs);
      });
      pending.catch(() => undefined);
      return await Promise.race([pending, expired]);
    } catch (error) {
      return this.#fail(error);
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
