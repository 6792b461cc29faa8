import { createHash } from 'node:crypto';
import type { NinjaAuthStore, StoreBatchOperation } from '../types.js';

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

// Any batch as one script: KEYS are the operations' keys, ARGV each one's code and arguments, in order. A miss, a
// set, a delete and a lock taken answer nil (false in Lua), a lock refused the value that holds it. An operation
// that fails (a SET refused under maxmemory) does not stop the ones after it — a lock's release comes last and
// must still happen — and the first failure is the script's answer once all have run.
const BATCH = script(`local results, at, failed = {}, 1, nil
local function run(...)
  local answer = redis.pcall(...)
  if type(answer) == 'table' and answer.err then
    failed = failed or answer
    return false
  end
  return answer
end
for i, key in ipairs(KEYS) do
  local code = ARGV[at]
  if code == 'g' then
    results[i] = run('GET', key)
    at = at + 1
  elseif code == 's' then
    run('SET', key, ARGV[at + 1], 'PX', ARGV[at + 2])
    results[i] = false
    at = at + 3
  elseif code == 't' then
    local held = run('GET', key)
    if held then results[i] = held else run('SET', key, ARGV[at + 1], 'PX', ARGV[at + 2]) results[i] = false end
    at = at + 3
  elseif code == 'd' then
    if run('GET', key) == ARGV[at + 1] then run('DEL', key) end
    results[i] = false
    at = at + 2
  else
    return redis.error_reply('ninja-auth: unknown batch operation ' .. tostring(code))
  end
end
if failed then return failed end
return results`);

const BATCH_CODE = { get: 'g', set: 's', setIfAbsentOrGet: 't', deleteIfEquals: 'd' } as const satisfies Record<StoreBatchOperation[0], string>;

const ttlOf = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs));
const textOf = (value: unknown): string | undefined =>
  value === null || value === undefined ? undefined : Buffer.isBuffer(value) ? value.toString('utf8') : String(value);

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
    return textOf(await this.#client.call('GET', this.#prefix + key));
  }

  /** One MGET: the guard's keys of one call share a hash tag, so they are on one Cluster node too. */
  async getMany(keys: readonly string[]): Promise<Array<string | undefined>> {
    const values = await this.#client.call('MGET', ...keys.map((key) => this.#prefix + key));
    if (!Array.isArray(values)) throw new TypeError('RedisStore: MGET did not answer a list');
    return values.map(textOf);
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#client.call('SET', this.#prefix + key, value, 'PX', ttlOf(ttlMs));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const reply = await this.#client.call('SET', this.#prefix + key, value, 'PX', ttlOf(ttlMs), 'NX');
    return reply === 'OK' || (Buffer.isBuffer(reply) && reply.toString() === 'OK');
  }

  /** The batch script with this one operation: the same take-or-read it does in a batch. */
  async setIfAbsentOrGet(key: string, value: string, ttlMs: number): Promise<true | string> {
    const [taken] = await this.batch([['setIfAbsentOrGet', key, value, ttlMs]]);
    return taken ?? true;
  }

  async deleteIfEquals(key: string, value: string): Promise<void> {
    await this.batch([['deleteIfEquals', key, value]]);
  }

  /**
   * One EVALSHA for the whole batch (the one script this store runs): the guard's keys of one batch share a hash
   * tag, so one Cluster node too.
   */
  async batch(operations: readonly StoreBatchOperation[]): Promise<Array<string | true | undefined>> {
    if (operations.length === 0) return [];
    const keys: string[] = [];
    const args: Array<string | number> = [];
    for (const operation of operations) {
      keys.push(this.#prefix + operation[1]);
      args.push(BATCH_CODE[operation[0]]);
      if (operation[0] === 'set' || operation[0] === 'setIfAbsentOrGet') args.push(operation[2], ttlOf(operation[3]));
      else if (operation[0] === 'deleteIfEquals') args.push(operation[2]);
    }
    const results = await this.#run(BATCH, keys, ...args);
    if (!Array.isArray(results) || results.length !== operations.length) throw new TypeError('RedisStore: a batch did not answer one result per operation');
    return operations.map(([method], i) => (method === 'get' ? textOf(results[i]) : method === 'setIfAbsentOrGet' ? (textOf(results[i]) ?? true) : undefined));
  }

  /**
   * Runs a script by its SHA-1; a server that does not know it yet (a restart, a failover, another node
   * of a cluster) answers NOSCRIPT, and then it is sent once in full, which also loads it there.
   */
  async #run(lua: Script, keys: readonly string[], ...args: Array<string | number>): Promise<unknown> {
    try {
      return await this.#client.call('EVALSHA', lua.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return this.#client.call('EVAL', lua.source, keys.length, ...keys, ...args);
    }
  }
}
