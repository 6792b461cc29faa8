import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, type RedisServer, redisServerBinary, startRedisServer } from './redis.js';

export interface RedisSentinel {
  /** The sentinel's address, as a client lists it in `sentinels`. */
  readonly sentinel: { readonly host: string; readonly port: number };
  /** The master's name, as a client gives it in `name`. */
  readonly name: string;
  /** The master itself, for a direct look at its keys. */
  readonly master: RedisServer;
  stop(): Promise<void>;
}

const NAME = 'ninja-auth-master';

/** Waits until the sentinel knows the master's address. */
async function waitForMaster(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const address = await client.call('SENTINEL', 'get-master-addr-by-name', NAME);
      if (Array.isArray(address) && address.length === 2) return;
    } catch {
      // not up yet
    } finally {
      client.disconnect();
    }
    if (Date.now() > deadline) throw new Error('the Redis Sentinel never learned its master');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One master and one sentinel watching it (quorum 1), on loopback, in a temporary directory. */
export async function startRedisSentinel(): Promise<RedisSentinel> {
  const master = await startRedisServer();
  const masterPort = new URL(master.url).port;
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'ninja-auth-sentinel-'));
  const config = join(dir, 'sentinel.conf');
  await writeFile(config, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${NAME} 127.0.0.1 ${masterPort} 1`, ''].join('\n'));
  const child: ChildProcess = spawn(redisServerBinary(), [config, '--sentinel'], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    await master.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForMaster(port);
  } catch (error) {
    await stop();
    throw error;
  }
  return { sentinel: { host: '127.0.0.1', port }, name: NAME, master, stop };
}

/** An ioredis client that finds the master through the sentinel, configured as the README recommends. */
export async function sentinelClient(sentinel: RedisSentinel): Promise<Redis> {
  const client = new Redis({ sentinels: [sentinel.sentinel], name: sentinel.name, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  client.on('error', () => undefined);
  await once(client, 'ready');
  return client;
}
