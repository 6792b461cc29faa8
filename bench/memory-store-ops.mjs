// CPU time of the memory store's operations as the guard uses them, and of a whole guarded refresh over it (no
// network: the upstream is a function), for this checkout's build and, with --compare=DIR, another's, in
// interleaved rounds of one run: node bench/memory-store-ops.mjs [--compare=DIR] [--rounds=9] [--ms=200]
// CPU time (process.cpuUsage, the GC's threads included), not wall time: the machine may be shared. Each build
// runs in a process of its own, a fresh one each round, so that neither pays for the other's garbage.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { HEADERS, loadGuard } from './guard-fixture.mjs';
import { checkouts, median } from './load.mjs';
import { tokenReplyBody } from './token-reply.mjs';
import { options } from './options.mjs';

const args = options();
const ROUNDS = Number(args.rounds ?? 9);
const MS = Number(args.ms ?? 200);
const dirs = checkouts(args.compare);

const REFRESH = 'a guarded refresh (rotates; fake upstream)';

async function load(dir) {
  const { MemoryStore, answered, sealReply, refresh } = await loadGuard(dir);
  let n = 0;
  const key = (i) => `reply:{${(i % 5000).toString(16).padStart(64, '0')}}:${'b'.repeat(64)}`;
  /** The store operations, on a store of their own; made after the refreshes are measured. */
  const operations = () => {
    // Distinct sealed replies, as rotations write them: a store that copies a value pays for it here.
    const replies = Array.from({ length: 20_000 }, (_, i) => sealReply(answered(200, HEADERS, Buffer.from(tokenReplyBody(i))), `rt-bench-${i}-abcdefghijklmnop`, 'f'.repeat(64)));
    const store = new MemoryStore();
    for (let i = 0; i < 5000; i++) store.set(key(i), replies[i], 3_600_000);
    return {
      'set (a sealed reply, as text)': () => store.set(key(++n), replies[n % replies.length], 3_600_000),
      'set (a timestamp)': () => store.set(`rotated:{${(++n % 5000).toString(16).padStart(64, '0')}}`, '1796148207237', 3_600_000),
      'get (a sealed reply)': () => store.get(key(++n)),
      'get (a miss)': () => store.get(`sealed:{${(++n % 5000).toString(16).padStart(64, '0')}}`),
    };
  };
  return { dir, operations, refresh };
}

const cpuMicros = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};
/** Runs `op` in batches of `batch` for about MS ms of CPU time; operations per second of CPU time. */
async function measure(op, batch, awaits) {
  let count = 0;
  const start = cpuMicros();
  while (cpuMicros() - start < MS * 1000) {
    if (awaits) for (let i = 0; i < batch; i++, count++) await op();
    else for (let i = 0; i < batch; i++, count++) op();
  }
  return (count * 1e6) / (cpuMicros() - start);
}

if (args.child !== undefined) {
  const build = await load(args.child);
  // The guard's store at its bound first, as under load, then the refreshes; then the operations alone.
  for (let i = 0; i < 4000; i++) await build.refresh();
  const measured = { [REFRESH]: await measure(build.refresh, 20, true) };
  for (const [name, op] of Object.entries(build.operations())) measured[name] = await measure(op, 100, false);
  process.send(measured);
  process.exit(0);
}

const results = new Map();
for (let round = 0; round < ROUNDS; round++) {
  for (const dir of dirs) {
    const child = fork(new URL(import.meta.url).pathname, [`--child=${dir}`, `--ms=${MS}`]);
    const [measured] = await once(child, 'message');
    for (const [name, perSecond] of Object.entries(measured)) results.set(`${name}\u0000${dir}`, [...(results.get(`${name}\u0000${dir}`) ?? []), perSecond]);
  }
}

const names = [...new Set([...results.keys()].map((key) => key.split('\u0000')[0]))];
console.log(`\nmedian operations per CPU second (CPU µs each) of ${ROUNDS} interleaved rounds of ${MS} ms\n`);
console.log(`| operation | ${dirs.join(' | ')} |`);
console.log(`|---|${dirs.map(() => '---:').join('|')}|`);
for (const name of names) {
  const cells = dirs.map((dir) => {
    const perSecond = median(results.get(`${name}\u0000${dir}`));
    return `${Math.round(perSecond).toLocaleString('en')} (${(1e6 / perSecond).toFixed(2)} µs)`;
  });
  console.log(`| ${name} | ${cells.join(' | ')} |`);
}
