// Instructions per guarded refresh, counted by valgrind (cachegrind, no cache simulation): on a shared virtual
// machine CPU time moves by tens of percent between minutes, an instruction count by a few. Each count runs the
// built guard (memory store, fake upstream, no network: bench/guard-fixture.mjs) for FEW and then MANY refreshes
// in processes of their own; the difference over MANY - FEW refreshes leaves out start-up and most of the
// JIT's warm-up. The GC's instructions are counted too, on every thread.
// node bench/instructions.mjs [--compare=DIR] [--rounds=2] [--few=3000] [--many=13000] — about a minute a count.
// Needs valgrind (apt-get install valgrind); not part of npm test or CI.
import { spawnSync } from 'node:child_process';
import { loadGuard } from './guard-fixture.mjs';
import { checkouts, median } from './load.mjs';
import { options } from './options.mjs';

const args = options();

if (args.child !== undefined) {
  const guard = await loadGuard(args.child);
  for (let i = 0; i < Number(args.count); i++) await guard.refresh();
  guard.dispose();
  process.exit(0);
}

if (spawnSync('sh', ['-c', 'command -v valgrind']).status !== 0) {
  process.stderr.write('bench/instructions.mjs needs valgrind: apt-get install valgrind\n');
  process.exit(1);
}
const ROUNDS = Number(args.rounds ?? 2);
const FEW = Number(args.few ?? 3000);
const MANY = Number(args.many ?? 13000);
const dirs = checkouts(args.compare);

/** Instructions of one process that runs `count` refreshes on the build in `dir`. */
function instructions(dir, count) {
  const run = spawnSync('valgrind', ['--tool=cachegrind', '--cache-sim=no', '--cachegrind-out-file=/dev/null', process.execPath, new URL(import.meta.url).pathname, `--child=${dir}`, `--count=${count}`], { encoding: 'utf8' });
  const refs = /I\s+refs:\s+([\d,]+)/.exec(run.stderr);
  if (run.status !== 0 || refs === null) throw new Error(`valgrind failed on ${dir}: ${run.stderr.slice(-500)}`);
  return Number(refs[1].replaceAll(',', ''));
}

const perRefresh = new Map(dirs.map((dir) => [dir, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const dir of dirs) {
    const count = (instructions(dir, MANY) - instructions(dir, FEW)) / (MANY - FEW);
    perRefresh.get(dir).push(count);
    process.stdout.write(`round ${round + 1}/${ROUNDS} ${dir}: ${Math.round(count).toLocaleString('en')} instructions a refresh\n`);
  }
}
console.log(`\ninstructions per guarded refresh, median of ${ROUNDS} rounds (${MANY} - ${FEW} refreshes)\n`);
console.log('| build | instructions a refresh | every round |');
console.log('|---|---:|---|');
for (const [dir, counts] of perRefresh) console.log(`| ${dir} | ${Math.round(median(counts)).toLocaleString('en')} | ${counts.map((c) => Math.round(c / 1000) + 'k').join(', ')} |`);
