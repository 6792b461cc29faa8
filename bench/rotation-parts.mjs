// What each part of rotation safety costs a refresh under load, with the memory store: the plain passthrough,
// then coalescing alone, reuse detection, the replay window, all three (the defaults), and the defaults over a
// memory store of 100 entries (replies that die young: what the store's retention costs). Each is a proxy of its
// own under the same load as `npm run bench` (32 connections, a fresh refresh token on every request, the proxy
// pinned to a core of its own), in interleaved rounds of one run. Besides the medians it prints the median of
// each round's difference to the plain passthrough measured just before it: on a machine whose speed moves by
// tens of percent between minutes, the paired difference says more than two medians apart.
// node bench/rotation-parts.mjs [--rounds=9] [--duration=3] [--compare=DIR] — after `npm run build`; not part of
// npm test or CI.
import { ask, buildEntry, median, oneAtATime, pin, refreshLoad, start } from './load.mjs';
import { options } from './options.mjs';

const args = options();
const ROUNDS = Number(args.rounds ?? 9);
const DURATION = Number(args.duration ?? 3);

/** The rotation and MemoryStore options of each part; target.mjs takes them from NINJA_AUTH_BENCH_ROTATION and _STORE. */
const parts = [
  { name: 'rotation safety off', kind: 'ninja-auth-plain' },
  { name: 'coalescing alone', kind: 'ninja-auth', rotation: { reuseGraceMs: 0, reuseDetectionMs: 0 } },
  { name: 'coalescing + reuse detection', kind: 'ninja-auth', rotation: { reuseGraceMs: 0 } },
  { name: 'coalescing + replay window', kind: 'ninja-auth', rotation: { reuseDetectionMs: 0 } },
  { name: 'the defaults (all three)', kind: 'ninja-auth' },
  { name: 'the defaults, `new MemoryStore({ maxEntries: 100 })`', kind: 'ninja-auth', store: { maxEntries: 100 } },
];
const from = args.compare === undefined ? undefined : buildEntry(args.compare);

const upstream = await start('upstream.mjs', []);
const tokenUrl = `http://127.0.0.1:${upstream.port}/token`;
for (const part of parts) {
  const env = { ...process.env, NINJA_AUTH_BENCH_ROTATION: JSON.stringify(part.rotation ?? {}), NINJA_AUTH_BENCH_STORE: JSON.stringify(part.store ?? {}), ...(from === undefined ? {} : { NINJA_AUTH_FROM: from }) };
  const started = await start('target.mjs', [part.kind, tokenUrl, ''], [], env);
  Object.assign(part, { process: started.child, port: started.port, cpu: [], rss: 0 });
}
for (const part of parts) await refreshLoad(part.port, 1);

const everyPid = [upstream.child.pid, process.pid, ...parts.map((p) => p.process.pid)];
const proxies = oneAtATime(parts.map((part) => part.process));
for (let round = 1; round <= ROUNDS; round++) {
  for (const part of parts) {
    proxies.only(part.process);
    pin({ proxy: part.process.pid, others: everyPid.filter((pid) => pid !== part.process.pid) });
    await refreshLoad(part.port, 1);
    const before = await ask(part.process, 'stats');
    const result = await refreshLoad(part.port, DURATION);
    const after = await ask(part.process, 'stats');
    part.cpu.push((after.cpuMicros - before.cpuMicros) / result.requests.total);
    part.rss = Math.max(part.rss, after.peakRssKb / 1024);
  }
  process.stderr.write(`round ${round}/${ROUNDS}\n`);
}
proxies.all();

const [plain] = parts;
console.log(`\nwhat rotation safety costs a refresh, by part (memory store; ${ROUNDS} rounds × ${DURATION} s, medians)\n`);
console.log('| part | CPU µs/req | vs off | + µs, paired by round | peak RSS MB |');
console.log('|---|---:|---:|---:|---:|');
for (const part of parts) {
  const added = part === plain ? '—' : `${median(part.cpu.map((cpu, round) => cpu - plain.cpu[round])).toFixed(0)}`;
  console.log(`| ${part.name} | ${median(part.cpu).toFixed(0)} | ${(median(part.cpu) / median(plain.cpu)).toFixed(2)}× | ${added} | ${part.rss.toFixed(0)} |`);
}
for (const part of parts) part.process.kill();
upstream.child.kill();
