import { createHash } from 'node:crypto';
import type { NinjaAuthStore } from '../types.js';

/**
 * The one method the store needs of a Redis client. An ioredis client has it as it is; for node-redis, pass
 * `{ call: (...args) => client.sendCommand(args.map(String)) }`.
 */
export interface RedisCommandClient {
  call(command: string, ...args: Array<string | number>): Promise<unknown>;
}

export interface RedisStoreOptions {
  /** The caller's client: ninja-auth never imports or configures a Redis library itself. */
  client: RedisCommandClient;
  /** Put before every key. Defaults to `'ninja-auth:'`. */
  prefix?: string;
}

/** A Lua script, sent by its SHA-1 (EVALSHA) and in full only when the server does not have it yet. */
interface Script {
  readonly source: string;
  readonly sha: string;
}

const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') });

// Lua returns nil for false: nil means "stored", a string is the value already there.
const TAKE_OR_READ = script("local held = redis.call('GET', KEYS[1]) if held then return held end redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return false");
const RELEASE_IF_OWNER = script("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end");

const isNoScript = (error: unknown): boolean => String((error as { message?: unknown } | null)?.message ?? error).startsWith('NOSCRIPT');

/** Rotation state shared by every process and host that uses the same Redis. */
export class RedisStore implements NinjaAuthStore {
  readonly #client: RedisCommandClient;
  readonly #prefix: string;

  constructor(options: RedisStoreOptions) {
    if (typeof options?.client?.call !== 'function') {
      throw new TypeError('RedisStore: options.client must be an ioredis client, e.g. new RedisStore({ client: new Redis(url) })');
    }
    if (options.prefix !== undefined && typeof options.prefix !== 'string') throw new TypeError('RedisStore: options.prefix must be a string, e.g. \'ninja-auth:\'');
    this.#client = options.client;
    this.#prefix = options.prefix ?? 'ninja-auth:';
  }

  async get(key: string): Promise<string | undefined> {
    const value = await this.#client.call('GET', this.#prefix + key);
    if (value === null || value === undefined) return undefined;
    return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }

  /** One MGET: the guard's keys of one call share a hash tag, so they are on one Cluster node too. */
  async getMany(keys: readonly string[]): Promise<Array<string | undefined>> {
    const values = await this.#client.call('MGET', ...keys.map((key) => this.#prefix + key));
    if (!Array.isArray(values)) throw new TypeError('RedisStore: MGET did not answer a list');
    return values.map((value: unknown) => (value === null || value === undefined ? undefined : Buffer.isBuffer(value) ? value.toString('utf8') : String(value)));
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#client.call('SET', this.#prefix + key, value, 'PX', Math.max(1, Math.ceil(ttlMs)));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const reply = await this.#client.call('SET', this.#prefix + key, value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
    return reply === 'OK' || (Buffer.isBuffer(reply) && reply.toString() === 'OK');
  }

  async setIfAbsentOrGet(key: string, value: string, ttlMs: number): Promise<true | string> {
    const held = await this.#run(TAKE_OR_READ, this.#prefix + key, value, Math.max(1, Math.ceil(ttlMs)));
    if (held === null || held === undefined) return true;
    return Buffer.isBuffer(held) ? held.toString('utf8') : String(held);
  }

  async deleteIfEquals(key: string, value: string): Promise<void> {
    await this.#run(RELEASE_IF_OWNER, this.#prefix + key, value);
  }

  /**
   * Runs a one-key script by its SHA-1; a server that does not know it yet (a restart, a failover, another node
   * of a cluster) answers NOSCRIPT, and then it is sent once in full, which also loads it there.
   */
  async #run(lua: Script, key: string, ...args: Array<string | number>): Promise<unknown> {
    try {
      return await this.#client.call('EVALSHA', lua.sha, 1, key, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return this.#client.call('EVAL', lua.source, 1, key, ...args);
    }
  }
}
