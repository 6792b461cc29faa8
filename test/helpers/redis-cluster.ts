import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { freePort, redisServerBinary, waitForPing } from './redis.js';

export interface ClusterNode {
  readonly host: string;
  readonly port: number;
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  stop(): Promise<void>;
}

const MASTERS = 3;

/** Parses `REDIS_CLUSTER_NODES` (`127.0.0.1:7000,127.0.0.1:7001,…`), as .ci/run exports it. */
function nodesFromEnvironment(): ClusterNode[] | undefined {
  const value = process.env['REDIS_CLUSTER_NODES'];
  if (value === undefined || value === '') return undefined;
  return value.split(',').map((entry) => {
    const [host, port] = entry.trim().split(':');
    return { host: host ?? '127.0.0.1', port: Number(port) };
  });
}

/** Waits until every node reports `cluster_state:ok`: all 16384 slots served. */
async function waitForClusterOk(nodes: readonly ClusterNode[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const { host, port } of nodes) {
    const client = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      for (;;) {
        const info = String(await client.call('CLUSTER', 'INFO'));
        if (/^cluster_state:ok\r?$/m.test(info)) break;
        if (Date.now() > deadline) throw new Error(`the Redis Cluster node ${host}:${port} never reached cluster_state:ok`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      client.disconnect();
    }
  }
}

/**
 * A three-master Redis Cluster of the test's own on loopback: `redis-server --cluster-enabled yes` three times,
 * each on free ports (client and cluster bus) with its own temporary directory, joined by
 * `redis-cli --cluster create … --cluster-replicas 0`, nothing persisted.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  const nodes: ClusterNode[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGKILL');
        await once(child, 'exit');
      }),
    );
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  };
  try {
    for (let i = 0; i < MASTERS; i++) {
      const port = await freePort();
      const busPort = await freePort();
      const dir = await mkdtemp(join(tmpdir(), 'ninja-auth-cluster-'));
      dirs.push(dir);
      const args = ['--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000', '--dir', dir, '--save', '', '--appendonly', 'no'];
      children.push(spawn(redisServerBinary(), args, { stdio: 'ignore' }));
      nodes.push({ host: '127.0.0.1', port });
    }
    await Promise.all(nodes.map(({ host, port }) => waitForPing(`redis://${host}:${port}`)));
    await promisify(execFile)('redis-cli', ['--cluster', 'create', ...nodes.map(({ host, port }) => `${host}:${port}`), '--cluster-replicas', '0', '--cluster-yes']);
    await waitForClusterOk(nodes);
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, stop };
}

/** The cluster CI started (REDIS_CLUSTER_NODES), or one of this test file's own. */
export async function testRedisCluster(): Promise<RedisCluster> {
  const nodes = nodesFromEnvironment();
  if (nodes === undefined) return startRedisCluster();
  await waitForClusterOk(nodes);
  return { nodes, stop: async () => undefined };
}

/**
 * An ioredis `Cluster` client, configured as the README recommends: a command fails at once rather than waiting
 * in a queue while a node is away, and the client is ready (slots known) before it is used.
 */
export async function clusterClient(nodes: readonly ClusterNode[]): Promise<Cluster> {
  const client = new Cluster([...nodes], {
    enableOfflineQueue: false,
    redisOptions: { maxRetriesPerRequest: 1 },
    clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  });
  client.on('error', () => undefined);
  await once(client, 'ready');
  return client;
}

/** Every key under `prefix`, from every master. */
export async function clusterKeys(client: Cluster, prefix: string): Promise<string[]> {
  const perNode = await Promise.all(client.nodes('master').map((node) => node.keys(`${prefix}*`)));
  return perNode.flat();
}
