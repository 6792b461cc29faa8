import type { NinjaAuthStore } from '../types.js';
import { MIN_PACKED_LENGTH, packBytes, type PackedValue, packValue, unpackValue } from './packed-value.js';

export interface MemoryStoreOptions {
  /** The most entries kept; past it the oldest go first. Defaults to `10000`. */
  maxEntries?: number;
  /**
   * The most bytes kept, as {@link MemoryStore.bytes} counts them; past it the oldest entries go first, and a value
   * larger than this on its own is not kept. Defaults to `33554432` (32 MiB).
   */
  maxBytes?: number;
  /** How often expired entries are swept. Defaults to `60000` ms. */
  sweepIntervalMs?: number;
  /** The clock that entries expire by, in milliseconds. Defaults to `Date.now`; for tests of windows and TTLs. */
  now?: () => number;
}

interface Entry extends PackedValue {
  readonly expiresAt: number;
}

/** What an entry costs beyond its characters: its slot in the map, the entry object and two string headers. */
const ENTRY_OVERHEAD_BYTES = 120;

const entryBytes = (key: string, entry: Entry): number => key.length + entry.text.length + ENTRY_OVERHEAD_BYTES;

/**
 * The default store: one process, bounded. Entries expire, and a flood of distinct tokens evicts the oldest
 * entries rather than growing without limit, in number and in bytes. Base64url values are held as bytes (see
 * `packed-value.ts`). Its sweep timer never keeps the process alive.
 */
export class MemoryStore implements NinjaAuthStore {
  readonly localOnly = true;
  readonly #entries = new Map<string, Entry>();
  /** Walks the entries oldest first across calls, so eviction never re-skips the deleted ones at the front. */
  #oldest: Iterator<[string, Entry]> = this.#entries.entries();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;
  readonly #sweeper: NodeJS.Timeout;
  readonly #now: () => number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    if (!Number.isSafeInteger(this.#maxEntries) || this.#maxEntries < 1) throw new TypeError('MemoryStore: maxEntries must be a positive whole number');
    this.#maxBytes = options.maxBytes ?? 32 * 1024 * 1024;
    if (!Number.isSafeInteger(this.#maxBytes) || this.#maxBytes < 1) throw new TypeError('MemoryStore: maxBytes must be a positive whole number of bytes, e.g. 33554432 (32 MiB)');
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

  /**
   * What the entries held now count against `maxBytes`: the characters of each key and of each value as held (a
   * packed value's bytes count one each) plus a fixed 120 per entry — an estimate of the memory they retain.
   */
  get bytes(): number {
    return this.#bytes;
  }

  getMany(keys: readonly string[]): Array<string | undefined> {
    return keys.map((key) => this.get(key));
  }

  get(key: string): string | undefined {
    const entry = this.#live(key);
    return entry === undefined ? undefined : unpackValue(entry);
  }

  set(key: string, value: string, ttlMs: number): void {
    this.#put(key, value.length < MIN_PACKED_LENGTH ? { text: value, bytesFrom: -1 } : packValue(value), ttlMs);
  }

  /**
   * `set(key, head + Buffer.from(bytes).toString('base64url'), ttlMs)`, without encoding the bytes only to decode
   * them again: `get` returns exactly that text.
   */
  setBytes(key: string, head: string, bytes: Uint8Array, ttlMs: number): void {
    this.#put(key, packBytes(head, bytes), ttlMs);
  }

  setIfAbsent(key: string, value: string, ttlMs: number): boolean {
    if (this.#live(key) !== undefined) return false;
    this.set(key, value, ttlMs);
    return true;
  }

  setIfAbsentOrGet(key: string, value: string, ttlMs: number): true | string {
    const held = this.#live(key);
    if (held !== undefined) return unpackValue(held);
    this.set(key, value, ttlMs);
    return true;
  }

  deleteIfEquals(key: string, value: string): void {
    const entry = this.#entries.get(key);
    if (entry !== undefined && unpackValue(entry) === value) this.#remove(key, entry);
  }

  shutdown(): void {
    clearInterval(this.#sweeper);
    this.#entries.clear();
    this.#bytes = 0;
  }

  #put(key: string, { text, bytesFrom }: PackedValue, ttlMs: number): void {
    const held = this.#entries.get(key);
    if (held !== undefined) this.#remove(key, held);
    const entry: Entry = { text, bytesFrom, expiresAt: this.#now() + ttlMs };
    this.#entries.set(key, entry);
    this.#bytes += entryBytes(key, entry);
    this.#evictOverflow();
  }

  /** The entry under `key` unless it expired (then it goes). */
  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#remove(key, entry);
      return undefined;
    }
    return entry;
  }

  #remove(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= entryBytes(key, entry);
  }

  #evictOverflow(): void {
    // A Map iterates in insertion order, and set() re-inserts: the first entries are the oldest writes.
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      let next = this.#oldest.next();
      if (next.done === true) {
        this.#oldest = this.#entries.entries();
        next = this.#oldest.next();
      }
      if (next.done === true) return;
      this.#remove(...next.value);
    }
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#remove(key, entry);
    }
  }
}
