import type { NinjaAuthStore } from '../types.js';
import { MIN_PACKED_LENGTH, packBytes, type PackedValue, packValue, unpackValue } from './packed-value.js';
import { ByteLog, CHUNK_BYTES, type LogSpan } from './byte-log.js';
import { splitKey, type TaggedKey } from './store-key.js';

export interface MemoryStoreOptions {
  /**
   * The most entries kept; past it the oldest go first: those of the hash tag (`{…}` in the key; a key without one is
   * its own) whose last write is the oldest, all of that tag's together. Defaults to `10000`.
   */
  maxEntries?: number;
  /**
   * The most bytes kept, as {@link MemoryStore.bytes} counts them; past it the oldest entries go first, as for
   * `maxEntries`, and a value larger than this on its own is not kept. Defaults to `33554432` (32 MiB).
   */
  maxBytes?: number;
  /** How often expired entries are swept. Defaults to `60000` ms. */
  sweepIntervalMs?: number;
  /** The clock that entries expire by, in milliseconds. Defaults to `Date.now`; for tests of windows and TTLs. */
  now?: () => number;
}

interface Entry extends PackedValue {
  /** The key without its hash tag (`{}` in its place; see `store-key.ts`), or `''` for a key without one. */
  readonly rest: string;
  readonly expiresAt: number;
  /** Where the bytes after the head (`text`) are, for a large value held outside the heap (see `byte-log.ts`). */
  readonly span: LogSpan | undefined;
  /** The next entry of the same tag, written before this one. */
  next: Entry | undefined;
}

/** Values with fewer bytes than this after their head stay in their string: a span and its copy cost more. */
const MIN_LOGGED_BYTES = 256;

/** What an entry costs beyond its characters: its slot in the map, the entry object and two string headers. */
const ENTRY_OVERHEAD_BYTES = 120;

/** The characters of its key (its tag's and its rest's) and of its value, and the overhead. */
const entryBytes = (tag: string, entry: Entry): number => tag.length + entry.rest.length + entry.text.length + (entry.span?.length ?? 0) + ENTRY_OVERHEAD_BYTES;

/**
 * The default store: one process, bounded. Entries expire, and a flood of distinct tokens evicts the oldest
 * entries rather than growing without limit, in number and in bytes. Base64url values are held as bytes (see
 * `packed-value.ts`). Entries are filed by their keys' hash tags (`{…}`): the few of one tag (one token's) hang
 * together from one slot, are found with one lookup of the tag and are evicted together, when the tag's last
 * write is the oldest. Its sweep timer never keeps the process alive.
 */
export class MemoryStore implements NinjaAuthStore {
  readonly localOnly = true;
  /** Each tag's newest entry, the others after it; in the order of each tag's last write. */
  readonly #tags = new Map<string, Entry>();
  /** Walks the tags oldest first across calls, so eviction never re-skips the deleted ones at the front. */
  #oldest: Iterator<[string, Entry]> = this.#tags.entries();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #size = 0;
  #bytes = 0;
  readonly #log = new ByteLog();
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
    return this.#size;
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
    return this.read(splitKey(key));
  }

  set(key: string, value: string, ttlMs: number): void {
    this.write(splitKey(key), value, ttlMs);
  }

  /**
   * `set(key, head + Buffer.from(bytes).toString('base64url'), ttlMs)`, without encoding the bytes only to decode
   * them again: `get` returns exactly that text.
   */
  setBytes(key: string, head: string, bytes: Uint8Array, ttlMs: number): void {
    this.writeBytes(splitKey(key), head, bytes, ttlMs);
  }

  /** @internal `get`, for a key the guard hands over as its tag and the rest. */
  read({ tag, rest }: TaggedKey): string | undefined {
    const entry = this.#live(tag, rest);
    return entry === undefined ? undefined : this.#valueOf(entry);
  }

  /** @internal `set`, for a key the guard hands over as its tag and the rest. */
  write({ tag, rest }: TaggedKey, value: string, ttlMs: number): void {
    this.#put(tag, rest, value.length < MIN_PACKED_LENGTH ? { text: value, bytesFrom: -1 } : packValue(value), ttlMs);
  }

  /** @internal `setBytes`, for a key the guard hands over as its tag and the rest. */
  writeBytes({ tag, rest }: TaggedKey, head: string, bytes: Uint8Array, ttlMs: number): void {
    if (bytes.length < MIN_LOGGED_BYTES || bytes.length > CHUNK_BYTES) {
      this.#put(tag, rest, packBytes(head, bytes), ttlMs);
      return;
    }
    this.#put(tag, rest, { text: head, bytesFrom: head.length }, ttlMs, this.#log.append(bytes));
  }

  setIfAbsent(key: string, value: string, ttlMs: number): boolean {
    const split = splitKey(key);
    if (this.#live(split.tag, split.rest) !== undefined) return false;
    this.write(split, value, ttlMs);
    return true;
  }

  setIfAbsentOrGet(key: string, value: string, ttlMs: number): true | string {
    const split = splitKey(key);
    const held = this.#live(split.tag, split.rest);
    if (held !== undefined) return this.#valueOf(held);
    this.write(split, value, ttlMs);
    return true;
  }

  deleteIfEquals(key: string, value: string): void {
    const { tag, rest } = splitKey(key);
    const entry = this.#find(tag, rest);
    if (entry !== undefined && this.#valueOf(entry) === value) this.#remove(tag, entry);
  }

  shutdown(): void {
    clearInterval(this.#sweeper);
    this.#tags.clear();
    this.#log.clear();
    this.#size = 0;
    this.#bytes = 0;
  }

  #find(tag: string, rest: string): Entry | undefined {
    for (let entry = this.#tags.get(tag); entry !== undefined; entry = entry.next) if (entry.rest === rest) return entry;
    return undefined;
  }

  #put(tag: string, rest: string, { text, bytesFrom }: PackedValue, ttlMs: number, span?: LogSpan): void {
    const held = this.#find(tag, rest);
    if (held !== undefined) this.#remove(tag, held);
    const next = this.#tags.get(tag);
    // Deleted first, so that the tag moves to the end: the last written.
    if (next !== undefined) this.#tags.delete(tag);
    const entry: Entry = { text, bytesFrom, rest, expiresAt: this.#now() + ttlMs, span, next };
    this.#tags.set(tag, entry);
    this.#size += 1;
    this.#bytes += entryBytes(tag, entry);
    this.#evictOverflow();
  }

  /** The entry unless it expired (then it goes). */
  #live(tag: string, rest: string): Entry | undefined {
    const entry = this.#find(tag, rest);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#remove(tag, entry);
      return undefined;
    }
    return entry;
  }

  #remove(tag: string, entry: Entry): void {
    const first = this.#tags.get(tag);
    if (first === entry) {
      if (entry.next === undefined) this.#tags.delete(tag);
      else this.#tags.set(tag, entry.next);
    } else {
      let before = first;
      while (before !== undefined && before.next !== entry) before = before.next;
      if (before === undefined) return;
      before.next = entry.next;
    }
    this.#uncount(tag, entry);
  }

  /** What an entry that is gone counted: its place in the bounds, and its bytes in the log. */
  #uncount(tag: string, entry: Entry): void {
    this.#size -= 1;
    this.#bytes -= entryBytes(tag, entry);
    if (entry.span !== undefined) this.#log.drop(entry.span);
  }

  #valueOf(entry: Entry): string {
    return entry.span === undefined ? unpackValue(entry) : entry.text + this.#log.view(entry.span).toString('base64url');
  }

  #evictOverflow(): void {
    // A Map iterates in insertion order, and every write re-inserts its tag: the first tags are those written to
    // the longest ago.
    while (this.#size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      let next = this.#oldest.next();
      if (next.done === true) {
        this.#oldest = this.#tags.entries();
        next = this.#oldest.next();
      }
      if (next.done === true) return;
      const [tag, first] = next.value;
      this.#tags.delete(tag);
      for (let entry: Entry | undefined = first; entry !== undefined; entry = entry.next) this.#uncount(tag, entry);
    }
  }

  #sweep(): void {
    const now = this.#now();
    for (const [tag, first] of this.#tags) {
      for (let entry: Entry | undefined = first; entry !== undefined; entry = entry.next) {
        if (entry.expiresAt <= now) this.#remove(tag, entry);
      }
    }
  }
}
