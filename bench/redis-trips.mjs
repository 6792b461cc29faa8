// How many Redis round trips a caller waits for, and how many commands a refresh costs, with RedisStore.
// A TCP proxy in front of Redis delays every packet by D ms each way; the same refreshes through a router on
// Redis directly and through one behind the proxy differ by (round trips × one PING's extra time through it). Sequential requests, so nothing
// overlaps; the commands the router sends are counted by its client, those Redis runs (scripts' own included) with INFO
// commandstats. Used by bench/run.mjs.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { ask, start } from './load.mjs';

/** A TCP proxy that holds every chunk for `delayMs` in each direction, keeping order. */
export async function delayingProxy(targetPort, delayMs) {
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const relay = (from, to) => {
      from.on('data', (chunk) => setTimeout(() => to.write(chunk), delayMs));
      from.on('close', () => setTimeout(() => to.destroy(), delayMs));
      from.on('error', () => undefined);
    };
    relay(client, upstream);
    relay(upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: server.address().port, close: () => server.close() };
}

function commandCalls(redisPort) {
  const out = spawnSync('redis-cli', ['-p', String(redisPort), 'INFO', 'commandstats']).stdout.toString();
  let total = 0;
  for (const match of out.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) if (match[1] !== 'info') total += Number(match[2]);
  return total;
}

async function post(port, token) {
  const startedAt = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/auth/refresh_token`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`refresh answered ${res.status}`);
  return performance.now() - startedAt;
}

/** The mean time of one PING, sequentially, over a raw connection: what one round trip costs on that port. */
async function pingTime(port, count = 40) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const times = [];
  for (let i = 0; i < count; i++) {
    const startedAt = performance.now();
    socket.write('PING\r\n');
    await once(socket, 'data');
    times.push(performance.now() - startedAt);
  }
  socket.destroy();
  return mean(times.slice(2));
}

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;

/** Mean caller latency of a refresh that reaches the upstream, and of its replay right after. */
async function latencies(port, label, count) {
  const upstreamCalls = [];
  const replays = [];
  for (let i = 0; i < count; i++) {
    const token = `rt-trips-${label}-${i}-abcdefghijklmnop`;
    upstreamCalls.push(await post(port, token));
    // Once the first one's store writes have landed: sooner, the router shares its answer from memory instead.
    await new Promise((resolve) => setTimeout(resolve, 60));
    replays.push(await post(port, token));
  }
  return { refresh: mean(upstreamCalls.slice(2)), replay: mean(replays.slice(2)) };
}

export async function measureRedisTrips({ tokenUrl, redisUrl, delayMs = 5, count = 40 }) {
  const redisPort = Number(new URL(redisUrl).port);
  const proxy = await delayingProxy(redisPort, delayMs);
  const direct = await start('target.mjs', ['ninja-auth-redis', tokenUrl, redisUrl]);
  const delayed = await start('target.mjs', ['ninja-auth-redis', tokenUrl, `redis://127.0.0.1:${proxy.port}`]);
  try {
    await latencies(direct.port, 'warm', 5);
    const sent = async () => (await ask(direct.child, 'stats')).redisCommands;
    const [before, executedBefore] = [await sent(), commandCalls(redisPort)];
    const fast = await latencies(direct.port, 'direct', count);
    const [pairs, executedPairs] = [((await sent()) - before) / count, (commandCalls(redisPort) - executedBefore) / count];
    // A refresh and its replay: split the commands between them by a second pass of refreshes alone.
    const [beforeRefreshes, executedBeforeRefreshes] = [await sent(), commandCalls(redisPort)];
    for (let i = 0; i < count; i++) await post(direct.port, `rt-trips-only-${i}-abcdefghijklmnop`);
    const [perRefresh, executedPerRefresh] = [((await sent()) - beforeRefreshes) / count, (commandCalls(redisPort) - executedBeforeRefreshes) / count];
    const slow = await latencies(delayed.port, 'delayed', count);
    // One round trip through the proxy, measured rather than taken as 2 × delayMs: timers fire late under load.
    const roundTrip = (await pingTime(proxy.port)) - (await pingTime(redisPort));
    return {
      delayMs,
      refreshTrips: (slow.refresh - fast.refresh) / roundTrip,
      replayTrips: (slow.replay - fast.replay) / roundTrip,
      refreshCommands: perRefresh,
      replayCommands: pairs - perRefresh,
      // What Redis ran, the commands inside scripts included (INFO commandstats).
      refreshExecuted: executedPerRefresh,
      replayExecuted: executedPairs - executedPerRefresh,
    };
  } finally {
    direct.child.kill();
    delayed.child.kill();
    proxy.close();
  }
}
