import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { Redis } from 'ioredis';

export interface RedisServer {
  readonly url: string;
  /** Stops the server, for tests of what happens when Redis goes away. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty, after {@link stop}. */
  restart(): Promise<void>;
}

export function redisServerBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('redis-server is not installed: `apt-get install redis-server` (or set REDIS_URL to a running server)');
  }
}

export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Waits until the server answers PING, not for a fixed time. */
export async function waitForPing(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch {
      if (Date.now() > deadline) throw new Error(`Redis at ${url} did not answer PING`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      client.disconnect();
    }
  }
}

/** A redis-server of the test's own, on a free loopback port, with nothing persisted. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const start = async (): Promise<ChildProcess> => {
    const started = spawn(redisServerBinary(), ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitForPing(url);
    return started;
  };
  let child = await start();
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
    restart: async () => {
      child = await start();
    },
  };
}

/** The Redis that CI started (REDIS_URL), or one of this test file's own. */
export async function testRedis(): Promise<RedisServer> {
  const url = process.env['REDIS_URL'];
  if (url === undefined || url === '') return startRedisServer();
  await waitForPing(url);
  return { url, stop: async () => undefined, restart: async () => undefined };
}

/**
 * A connected client that gives up at once while Redis is away, as the README recommends; `enableOfflineQueue`
 * for the tests of the other setting, where commands wait for a reconnection instead.
 */
export async function redisClient(url: string, options: { enableOfflineQueue?: boolean; enableAutoPipelining?: boolean } = {}): Promise<Redis> {
  const client = new Redis(url, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: options.enableOfflineQueue ?? false,
    enableAutoPipelining: options.enableAutoPipelining ?? false,
    retryStrategy: (attempt) => Math.min(attempt * 50, 500),
  });
  client.on('error', () => undefined);
  await once(client, 'ready');
  return client;
}

/** A prefix no other test uses, so tests can share one server. */
export const uniquePrefix = (): string => `ninja-auth-test:${Math.random().toString(36).slice(2)}:`;
