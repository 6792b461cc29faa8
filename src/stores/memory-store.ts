import type { NinjaAuthStore } from '../types.js';

export interface MemoryStoreOptions {
  /** The most entries kept; past it the oldest go first. Defaults to `10000`. */
  maxEntries?: number;
  /** How often expired entries are swept. Defaults to `60000` ms. */
  sweepIntervalMs?: number;
  /** The clock that entries expire by, in milliseconds. Defaults to `Date.now`; for tests of windows and TTLs. */
  now?: () => number;
}

interface Entry {
  readonly value: string;
  readonly expiresAt: number;
}

/**
 * The default store: one process, bounded. Entries expire, and a flood of distinct tokens evicts the oldest
 * entries rather than growing without limit. Its sweep timer never keeps the process alive.
 */
export class MemoryStore implements NinjaAuthStore {
  readonly localOnly = true;
  readonly #entries = new Map<string, Entry>();
  /** Walks the keys oldest first across calls, so eviction never re-skips the deleted ones at the front. */
  #oldest: Iterator<string> = this.#entries.keys();
  readonly #maxEntries: number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #now: () => number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    if (!Number.isSafeInteger(this.#maxEntries) || this.#maxEntries < 1) throw new TypeError('MemoryStore: maxEntries must be a positive whole number');
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('MemoryStore: now must be a function that returns milliseconds');
    this.#now = options.now ?? (() => Date.now());
    const sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
    // Node runs a timer of more than 2^31 - 1 ms after 1 ms instead.
    if (typeof sweepIntervalMs !== 'number' || !(sweepIntervalMs >= 1 && sweepIntervalMs <= 2_147_483_647)) {
      throw new TypeError('MemoryStore: sweepIntervalMs must be a number of milliseconds, from 1 to 2147483647');
    }
    this.#sweeper = setInterval(() => this.#sweep(), sweepIntervalMs);
    this.#sweeper.unref();
  }

  /** How many entries are held now, expired ones not yet swept included. */
  get size(): number {
    return this.#entries.size;
  }

  get(key: string): string | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: string, ttlMs: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt: this.#now() + ttlMs });
    this.#evictOverflow();
  }

  setIfAbsent(key: string, value: string, ttlMs: number): boolean {
    if (this.get(key) !== undefined) return false;
    this.set(key, value, ttlMs);
    return true;
  }

  setIfAbsentOrGet(key: string, value: string, ttlMs: number): true | string {
    const held = this.get(key);
    if (held !== undefined) return held;
    this.set(key, value, ttlMs);
    return true;
  }

  deleteIfEquals(key: string, value: string): void {
    if (this.#entries.get(key)?.value === value) this.#entries.delete(key);
  }

  shutdown(): void {
    clearInterval(this.#sweeper);
    this.#entries.clear();
  }

  #evictOverflow(): void {
    // A Map iterates in insertion order, and set() re-inserts: the first keys are the oldest writes.
    while (this.#entries.size > this.#maxEntries) {
      let next = this.#oldest.next();
      if (next.done === true) {
        this.#oldest = this.#entries.keys();
        next = this.#oldest.next();
      }
      if (next.done !== true) this.#entries.delete(next.value);
    }
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
    }
  }
}
