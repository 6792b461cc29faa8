// `npm run bench`: the refresh path of ninja-auth against the alternatives, in one run, interleaved.
// Every process is separate: the token endpoint, each proxy, and the load generator (autocannon, here). With
// taskset and two cores or more, the proxies get a core of their own and everything else shares the rest.
// Options: --duration=S per measurement (3), --rounds=N (5), --connections=C (32), --warm-up=S before each (1), --soak=S (0: off),
// --only=a,b (targets by kind), --compare=DIR (each ninja-auth kind also from the build in DIR, another checkout
// with `npm run build` done: an A/B of two builds in one run), --telemetry (adds the three telemetry kinds: off,
// API no-op, real SDK). It is a benchmark, never part of npm test or CI.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import { ask, buildEntry, median, oneAtATime, pin, refreshLoad, start } from './load.mjs';
import { measureRedisTrips } from './redis-trips.mjs';
import { options } from './options.mjs';

const args = options();
const DURATION = Number(args.duration ?? 3);
const ROUNDS = Number(args.rounds ?? 5);
const CONNECTIONS = Number(args.connections ?? 32);
const SOAK = Number(args.soak ?? 0);
/** Seconds of load before each measured round, not counted. */
const WARM_UP = Number(args['warm-up'] ?? 1);

async function startRedis() {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) return undefined;
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('redis-cli', ['-p', String(port), 'ping']).stdout?.toString().trim() === 'PONG') return { child, url: `redis://127.0.0.1:${port}` };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('redis-server did not start');
}

function load(port, path, seconds, connections = CONNECTIONS) {
  return refreshLoad(port, seconds, { connections, path });
}

const upstream = await start('upstream.mjs', []);
const tokenUrl = `http://127.0.0.1:${upstream.port}/token`;
const redis = await startRedis();

const allTargets = [
  { name: 'upstream directly', kind: 'direct', path: '/token' },
  { name: 'http-proxy-middleware', kind: 'hpm' },
  { name: 'hand-written axios', kind: 'axios' },
  { name: 'node:http by hand (the floor)', kind: 'raw' },
  { name: 'ninja-auth (memory store)', kind: 'ninja-auth' },
  { name: 'ninja-auth (rotation safety off)', kind: 'ninja-auth-plain' },
  ...(redis
    ? [
      { name: 'ninja-auth (Redis store)', kind: 'ninja-auth-redis' },
      { name: 'ninja-auth (Redis store, ioredis auto-pipelining)', kind: 'ninja-auth-redis-pipelined' },
    ]
    : []),
  { name: 'ninja-auth (telemetry: false)', kind: 'ninja-auth-telemetry-off', optional: true },
  { name: 'ninja-auth (OpenTelemetry API, no SDK)', kind: 'ninja-auth-telemetry-noop', optional: true },
  { name: 'ninja-auth (OpenTelemetry SDK)', kind: 'ninja-auth-telemetry-sdk', optional: true },
];
const only = args.only?.split(',');
const compare = args.compare === undefined ? undefined : buildEntry(args.compare);
const targets = allTargets.filter((t) => (only ? only.includes(t.kind) : !t.optional || 'telemetry' in args));
if (compare !== undefined) {
  for (const target of targets.filter((t) => t.kind.startsWith('ninja-auth'))) {
    targets.splice(targets.indexOf(target) + 1, 0, { ...target, name: `${target.name} [${args.compare}]`, from: compare });
  }
}
for (const target of targets) {
  target.path ??= '/auth/refresh_token';
  target.results = [];
  if (target.kind === 'direct') {
    target.port = upstream.port;
    target.process = upstream.child;
  } else {
    const env = target.from === undefined ? process.env : { ...process.env, NINJA_AUTH_FROM: target.from };
    const started = await start('target.mjs', [target.kind, tokenUrl, redis?.url ?? ''], [], env);
    target.port = started.port;
    target.process = started.child;
  }
  await load(target.port, target.path, 1);
}
// The proxy under load gets a core of its own; the others, idle but still collecting garbage after their own
// turn, wait with the load generator, the token endpoint and Redis on the rest.
const everyPid = [upstream.child.pid, process.pid, ...(redis ? [redis.child.pid] : []), ...targets.map((t) => t.process.pid)];
const pinFor = (target) => (target.kind === 'direct' ? false : pin({ proxy: target.process.pid, others: everyPid.filter((pid) => pid !== target.process.pid) }));
let pinned = false;
const proxies = oneAtATime(targets.filter((t) => t.kind !== 'direct').map((t) => t.process));

for (let round = 1; round <= ROUNDS; round++) {
  for (const target of targets) {
    proxies.only(target.process);
    pinned = pinFor(target) || pinned;
    // Unmeasured: what a proxy does first when it runs again (the collections V8 put off while it sat idle, its
    // upstream connections) falls here, not in the round.
    await load(target.port, target.path, WARM_UP);
    const before = await ask(target.process, 'stats');
    const result = await load(target.port, target.path, DURATION);
    const after = await ask(target.process, 'stats');
    const requests = result.requests.total;
    target.results.push({
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      errors: result.errors + result.non2xx,
      cpuPerRequest: (after.cpuMicros - before.cpuMicros) / requests,
      peakRssKb: after.peakRssKb,
    });
    process.stderr.write(`round ${round}/${ROUNDS} ${target.name}: ${Math.round(result.requests.average)} req/s\n`);
  }
}

proxies.all();

for (const target of targets) {
  const r = target.results;
  target.summary = {
    rps: median(r.map((x) => x.rps)),
    p50: median(r.map((x) => x.p50)),
    p99: median(r.map((x) => x.p99)),
    cpu: median(r.map((x) => x.cpuPerRequest)),
    rssMb: Math.max(...r.map((x) => x.peakRssKb)) / 1024,
    errors: r.reduce((sum, x) => sum + x.errors, 0),
  };
}

const byKind = Object.fromEntries(targets.filter((t) => t.from === undefined).map((t) => [t.kind, t.summary]));
const hpm = byKind['hpm'];
const handWritten = byKind['axios'];
const ninja = byKind['ninja-auth'];
const ratio = (a, b) => (a !== undefined && b !== undefined ? `${(a / b).toFixed(2)}×` : '—');

const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
const placement = pinned ? 'proxies pinned to a core of their own' : 'processes not pinned';
console.log(`\nninja-auth refresh path — ${os.cpus().length} × ${cpuModel}, Node ${process.version}, ${CONNECTIONS} connections, ${ROUNDS} rounds × ${DURATION} s, medians, ${placement}\n`);
console.log('| what | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | req/s vs hpm | CPU vs hpm | errors |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const t of targets) {
  const s = t.summary;
  const cpu = t.kind === 'direct' ? '(upstream)' : s.cpu.toFixed(0);
  console.log(`| ${t.name} | ${Math.round(s.rps)} | ${s.p50} | ${s.p99} | ${cpu} | ${s.rssMb.toFixed(0)} | ${ratio(s.rps, hpm?.rps)} | ${t.kind === 'direct' ? '—' : ratio(s.cpu, hpm?.cpu)} | ${s.errors} |`);
}

const plainSummary = byKind['ninja-auth-plain'];
const redisSummary = byKind['ninja-auth-redis'];
if (ninja && hpm && handWritten) {
  const check = (ok, text) => console.log(`${ok ? 'met   ' : 'MISSED'} ${text}`);
  console.log('\ntargets (ratios in this run):');
  check(ninja.cpu <= 1.0 * hpm.cpu, `defaults (memory store, a hook): CPU per refresh ≤ 1.0× http-proxy-middleware: ${ratio(ninja.cpu, hpm.cpu)}`);
  if (plainSummary) check(plainSummary.cpu <= 0.85 * hpm.cpu, `rotation safety off: CPU per refresh ≤ 0.85× http-proxy-middleware: ${ratio(plainSummary.cpu, hpm.cpu)}`);
  check(ninja.rps >= 2 * handWritten.rps, `throughput ≥ 2× the hand-written axios passthrough: ${ratio(ninja.rps, handWritten.rps)}`);
  check(ninja.p99 <= hpm.p99, `p99 latency no worse than http-proxy-middleware: ${ninja.p99} ms vs ${hpm.p99} ms`);
  check(ninja.rssMb <= 1.2 * hpm.rssMb, `peak RSS ≤ 1.2× http-proxy-middleware: ${ratio(ninja.rssMb, hpm.rssMb)}`);
  if (redisSummary) check(redisSummary.cpu <= 1.4 * hpm.cpu, `Redis store: CPU per refresh ≤ 1.4× http-proxy-middleware: ${ratio(redisSummary.cpu, hpm.cpu)}`);
  const pipelined = byKind['ninja-auth-redis-pipelined'];
  if (pipelined) check(pipelined.cpu <= 1.4 * hpm.cpu, `Redis store, the client with enableAutoPipelining (as the README advises): CPU per refresh ≤ 1.4× http-proxy-middleware: ${ratio(pipelined.cpu, hpm.cpu)}`);
}

const plain = byKind['ninja-auth-plain'];
if (plain) {
  console.log('\nthe cost of rotation safety on a refresh (latency as a ratio to the plain passthrough):');
  const names = { 'ninja-auth': 'memory store', 'ninja-auth-redis': 'Redis store', 'ninja-auth-redis-pipelined': 'Redis store, auto-pipelining' };
  for (const [kind, name] of Object.entries(names)) {
    const s = byKind[kind];
    if (s) console.log(`- ${name}: p50 ${ratio(s.p50 || 0.5, plain.p50 || 0.5)}, p99 ${ratio(s.p99, plain.p99)}, CPU ${ratio(s.cpu, plain.cpu)}, req/s ${ratio(s.rps, plain.rps)}`);
  }
}

const telemetryOff = byKind['ninja-auth-telemetry-off'];
if (telemetryOff) {
  console.log('\nthe cost of telemetry on a refresh (as a ratio to telemetry: false):');
  for (const kind of ['ninja-auth-telemetry-noop', 'ninja-auth-telemetry-sdk']) {
    const s = byKind[kind];
    if (s) console.log(`- ${kind === 'ninja-auth-telemetry-noop' ? 'API with its no-op providers' : 'the real SDK'}: CPU ${ratio(s.cpu, telemetryOff.cpu)} (${s.cpu.toFixed(0)} vs ${telemetryOff.cpu.toFixed(0)} µs), p50 ${ratio(s.p50 || 0.5, telemetryOff.p50 || 0.5)}, p99 ${ratio(s.p99, telemetryOff.p99)}, req/s ${ratio(s.rps, telemetryOff.rps)}`);
  }
}

const ninjaTarget = targets.find((t) => t.kind === 'ninja-auth');
if (ninjaTarget) {
  pinFor(ninjaTarget);
  const before = (await ask(upstream.child, 'calls')).calls;
  const burst = await Promise.all(
    Array.from({ length: 100 }, () =>
      fetch(`http://127.0.0.1:${ninjaTarget.port}/auth/refresh_token`, { method: 'POST', headers: { authorization: 'Bearer rt-burst-identical' } }).then((r) => r.text()),
    ),
  );
  const after = (await ask(upstream.child, 'calls')).calls;
  console.log(`\ncoalescing: a burst of 100 identical refreshes → ${after - before} upstream request(s), ${new Set(burst).size} distinct body(ies)`);

  if (SOAK > 0) {
    // RSS sampled ten times over the soak: a plateau is the memory store filling up, a climb is a leak.
    const samples = [(await ask(ninjaTarget.process, 'stats')).rssKb];
    const running = load(ninjaTarget.port, ninjaTarget.path, SOAK);
    for (let i = 1; i <= 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, (SOAK * 1000) / 10));
      samples.push((await ask(ninjaTarget.process, 'stats')).rssKb);
    }
    const result = await running;
    const mb = samples.map((kb) => (kb / 1024).toFixed(0));
    console.log(`soak: ${SOAK} s at ${Math.round(result.requests.average)} req/s: RSS ${mb[0]} MB at the start, ${mb.at(-1)} MB at the end; every ${SOAK / 10} s: ${mb.join(' → ')} MB`);
  }
}

if (redis && byKind['ninja-auth-redis']) {
  // Sequential refreshes with a 5 ms delay each way in front of Redis: the latency they add, in round trips.
  pin({ others: everyPid });
  const trips = await measureRedisTrips({ tokenUrl, redisUrl: redis.url });
  console.log(
    `\nRedis store, on the caller's path (${trips.delayMs} ms each way in front of Redis): a refresh that reaches the upstream waits for ` +
      `${trips.refreshTrips.toFixed(1)} round trips and sends ${trips.refreshCommands.toFixed(1)} commands (Redis runs ${trips.refreshExecuted.toFixed(1)}, scripts' own included); ` +
      `a replay ${trips.replayTrips.toFixed(1)} round trips, ${trips.replayCommands.toFixed(1)} commands (${trips.replayExecuted.toFixed(1)})`,
  );
}

for (const t of targets) t.process.kill();
upstream.child.kill();
redis?.child.kill();
