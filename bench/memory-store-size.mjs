// What the rotation guard keeps in memory per rotation, measured without load so that an A/B is a number, not
// noise: node --expose-gc bench/memory-store-size.mjs [--rotations=N] [--from=DIR]
// It drives the built guard (dist/esm of this checkout, or of DIR: another checkout with `npm run build` done)
// with the bench's 1.26 KB token reply, no network: each refresh presents a fresh token and the upstream
// answers with a fresh successor, as in `npm run bench`. It reports:
// - retained heap (heapUsed + arrayBuffers, after a full GC) per rotation, with the store unbounded, for the
//   memory store and for the local memory the guard keeps beside a shared store;
// - with the default bounds, after far more rotations than fit: entries, retained bytes, and how many of the
//   latest rotations can still be replayed — the replay window under load, in rotations.
import { tokenReplyBody } from './token-reply.mjs';
import { options } from './options.mjs';

const args = options();
const ROTATIONS = Number(args.rotations ?? 3334);
const dist = new URL(`${(args.from ?? new URL('..', import.meta.url).pathname).replace(/\/$/, '')}/dist/esm/`, 'file:///').href;
if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc');

const { MemoryStore } = await import(`${dist}index.js`);
const { parseOptions } = await import(`${dist}options.js`);
const { rotationGuard } = await import(`${dist}rotation/guard.js`);
const { answered } = await import(`${dist}upstream.js`);

const HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache', date: new Date(0).toUTCString() };
const tokenUrl = 'http://127.0.0.1:9/token';

/** A shared store that keeps nothing (every read misses): what stays in memory is the guard's own local copy. */
const forgetfulSharedStore = {
  get: async () => undefined,
  set: async () => undefined,
  setIfAbsent: async () => true,
  setIfAbsentOrGet: async () => true,
  deleteIfEquals: async () => undefined,
};

/** A guard over `store`; `answering` decides whether the upstream rotates (200, fresh successor) or refuses (400). */
function guardOver(store) {
  const config = parseOptions({ upstream: { tokenUrl }, clientId: 'bench-client', clientSecret: 'bench-secret', store, telemetry: false }, {});
  const upstream = { calls: 0, rotates: true };
  const send = async () => {
    upstream.calls++;
    if (!upstream.rotates) return answered(400, HEADERS, Buffer.from('{"error":"invalid_grant"}'));
    return answered(200, HEADERS, Buffer.from(tokenReplyBody(upstream.calls)));
  };
  return { guard: rotationGuard(config, send), upstream };
}

let sequence = 0;
/** The n-th token presented: as in the load bench, a fresh one each time. */
const tokenNumbered = (n) => `rt-bench-${n}-abcdefghijklmnop`;

/** Presents the n-th token: the guard's result. */
async function present(guard, n) {
  const refreshToken = tokenNumbered(n);
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'bench-client', client_secret: 'bench-secret' });
  const result = await guard.refresh({ url: tokenUrl, form, endpoint: 'refresh_token' }, refreshToken);
  await result.settled;
  return result;
}

/** `count` rotations, each with a fresh token. */
async function rotate(guard, count) {
  for (let i = 0; i < count; i++) await present(guard, ++sequence);
}

function retained() {
  for (let i = 0; i < 4; i++) global.gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heapUsed, arrayBuffers };
}

async function perRotation(label, store) {
  const { guard } = guardOver(store);
  await rotate(guard, 300);
  const before = retained();
  await rotate(guard, ROTATIONS);
  const after = retained();
  const heap = (after.heapUsed - before.heapUsed) / ROTATIONS;
  const buffers = (after.arrayBuffers - before.arrayBuffers) / ROTATIONS;
  console.log(`| ${label} | ${ROTATIONS} | ${(store.size / (ROTATIONS + 300)).toFixed(2)} | ${heap.toFixed(0)} | ${buffers.toFixed(0)} | ${(heap + buffers).toFixed(0)} |`);
  guard.dispose();
  store.shutdown();
}

console.log(`\nretained per rotation (store unbounded; ${dist})\n`);
console.log('| guard over | rotations | entries per rotation | heap B | arrayBuffers B | total B |');
console.log('|---|---:|---:|---:|---:|---:|');
await perRotation('MemoryStore', new MemoryStore({ maxEntries: 1e7, ...(args.unboundedBytes === 'no' ? {} : { maxBytes: 2 ** 40 }) }));
{
  // The local memory beside a shared store: the guard's own MemoryStore, reached through its dispose().
  const before = retained();
  const { guard } = guardOver(forgetfulSharedStore);
  await rotate(guard, ROTATIONS);
  const after = retained();
  const total = (after.heapUsed - before.heapUsed + after.arrayBuffers - before.arrayBuffers) / ROTATIONS;
  console.log(`| a shared store (the local copy, default bounds) | ${ROTATIONS} | — | — | — | ${total.toFixed(0)} |`);
  guard.dispose();
}

// The default bounds, far past them: what is held, and how many of the latest rotations still replay.
{
  const start = retained();
  const store = new MemoryStore();
  const { guard, upstream } = guardOver(store);
  const total = 4 * ROTATIONS * 3;
  const first = sequence + 1;
  await rotate(guard, total);
  const held = retained();
  // While checking, the upstream refuses: a refresh that is not replayed writes nothing, so the check changes nothing.
  upstream.rotates = false;
  let replayable = 0;
  for (let n = sequence; n >= first && (await present(guard, n)).source === 'store'; n--) replayable++;
  const bytes = held.heapUsed - start.heapUsed + held.arrayBuffers - start.arrayBuffers;
  console.log(`\ndefault MemoryStore after ${total} rotations: ${store.size} entries, ${(bytes / 2 ** 20).toFixed(1)} MiB retained, the latest ${replayable} rotations replayable (${(bytes / Math.max(1, replayable)).toFixed(0)} B per replayable rotation)`);
  guard.dispose();
  store.shutdown();
}
