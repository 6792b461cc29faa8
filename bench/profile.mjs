// `npm run bench:profile`: where the CPU of one ninja-auth refresh goes. Runs the benchmark's token endpoint and
// one proxy under `--cpu-prof`, loads it, and attributes every sample of the proxy's main thread to the code
// that was running: a builtin (a regexp, Object.keys…) counts for the module that called it.
// Options: --kind=ninja-auth (any kind of bench/target.mjs), --duration=S (10), --connections=C (32), --top=N
// (15 functions), --redis=URL (a running Redis, for --kind=ninja-auth-redis), --save=FILE (keeps the .cpuprofile, to open in Chrome's DevTools).
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ask, pin, refreshLoad, start } from './load.mjs';
import { options } from './options.mjs';

const args = options();
const KIND = args.kind ?? 'ninja-auth';
const DURATION = Number(args.duration ?? 10);
const CONNECTIONS = Number(args.connections ?? 32);
const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ninja-auth-profile-'));


const upstream = await start('upstream.mjs', []);
const target = await start('target.mjs', [KIND, `http://127.0.0.1:${upstream.port}/token`, args.redis ?? ''], ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
const pinned = pin({ proxy: target.child.pid, others: [upstream.child.pid, process.pid] });
const load = (seconds) => refreshLoad(target.port, seconds, { connections: CONNECTIONS });

await load(2);
const before = await ask(target.child, 'stats');
const result = await load(DURATION);
const after = await ask(target.child, 'stats');
target.child.send('exit');
await once(target.child, 'exit');
upstream.child.kill();

const requests = result.requests.total;
const cpuPerRequest = (after.cpuMicros - before.cpuMicros) / requests;
const profileFile = path.join(profileDir, fs.readdirSync(profileDir)[0]);
if (args.save !== undefined) fs.copyFileSync(profileFile, args.save);
const profile = JSON.parse(fs.readFileSync(profileFile, 'utf8'));
fs.rmSync(profileDir, { recursive: true, force: true });

const CATEGORIES = [
  ['axios (its request pipeline)', (url) => url.includes('/node_modules/axios/')],
  ['undici (the default client\'s transport)', (url) => url.includes('/node_modules/undici/')],
  ['ioredis (the Redis store\'s client)', (url) => /\/node_modules\/(ioredis|redis-parser|redis-errors|cluster-key-slot|denque|standard-as-callback)\//.test(url)],
  ['ninja-auth', (url) => url.includes('/dist/esm/') || url.includes('/dist/cjs/')],
  ['express and its router', (url) => /\/node_modules\/(express|router|body-parser|finalhandler|parseurl|path-to-regexp|send|qs|debug)\//.test(url)],
  ['node:crypto', (url) => url.startsWith('node:internal/crypto') || url === 'node:crypto'],
  ['node:http, net, streams, timers', (url) => url.startsWith('node:')],
];
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const parents = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);

/** The category of a sample: its own frame's, or the nearest caller's that has one. */
function categoryOf(id) {
  const leaf = nodes.get(id).callFrame;
  if (leaf.functionName === '(garbage collector)') return 'garbage collection (main thread)';
  if (leaf.functionName === '(idle)') return 'idle';
  if (leaf.functionName === 'writev' || leaf.functionName === 'writeBuffer' || leaf.functionName === 'writeUtf8String') return 'socket writes (the syscall)';
  for (let current = id; current !== undefined; current = parents.get(current)) {
    const { url } = nodes.get(current).callFrame;
    const category = CATEGORIES.find(([, matches]) => matches(url));
    if (category) return category[0];
  }
  return 'other (V8, the event loop)';
}

const time = new Map();
let busy = 0;
profile.samples.forEach((id, i) => {
  const delta = profile.timeDeltas[i] ?? 0;
  const category = categoryOf(id);
  if (category === 'idle') return;
  busy += delta;
  time.set(category, (time.get(category) ?? 0) + delta);
});

// Sampled time runs a little past CPU time (the profiler's own cost, moments off the core), so each share is
// applied to the CPU time per request that process.cpuUsage() measured.
console.log(`\n${KIND}: ${Math.round(result.requests.average)} req/s under the profiler, ${cpuPerRequest.toFixed(0)} µs CPU per request${pinned ? ', proxy pinned to a core of its own' : ''}\n`);
console.log('| where the proxy\'s main thread was | share of samples | ≈ µs CPU per request |');
console.log('|---|---:|---:|');
for (const [category, micros] of [...time].sort((a, b) => b[1] - a[1])) {
  const share = micros / busy;
  console.log(`| ${category} | ${(100 * share).toFixed(1)} % | ${(share * cpuPerRequest).toFixed(0)} |`);
}

// ninja-auth's own share, by function: the nearest ninja-auth frame of each sample that ninja-auth owns.
const own = new Map();
profile.samples.forEach((id, i) => {
  if (categoryOf(id) !== 'ninja-auth') return;
  for (let current = id; current !== undefined; current = parents.get(current)) {
    const { url, functionName, lineNumber } = nodes.get(current).callFrame;
    if (!url.includes('/dist/')) continue;
    const where = `${functionName || '(anonymous)'} ${url.replace(/.*\/dist\/(esm|cjs)\//, '')}:${lineNumber + 1}`;
    own.set(where, (own.get(where) ?? 0) + (profile.timeDeltas[i] ?? 0));
    break;
  }
});
console.log('\n| ninja-auth, by function (self and what it calls outside ninja-auth) | ≈ µs CPU per request |');
console.log('|---|---:|');
for (const [where, micros] of [...own].sort((a, b) => b[1] - a[1]).slice(0, Number(args.top ?? 15))) {
  console.log(`| ${where} | ${((micros / busy) * cpuPerRequest).toFixed(1)} |`);
}
