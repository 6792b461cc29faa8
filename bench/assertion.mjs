// `npm run build && node bench/assertion.mjs`: what a client assertion costs. Part 1 signs assertions alone,
// one at a time and 32 in flight (jose signs RSA, EC and Ed25519 on libuv's thread pool, HMAC inline). Part 2
// times whole refreshes through the router, in this process, against a loopback upstream, with
// client_secret_post and with private_key_jwt per algorithm: the difference is what the assertion adds to a
// refresh. Options: --seconds=S per measurement (0.5), --rounds=N of part 2, interleaved (5). About 10 s in all; never part of npm test or CI.
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import express from 'express';
import { assertionSigner, readAssertionKey, secretAssertionKey } from '../dist/esm/client-assertion.js';
import { ninjaAuth } from '../dist/esm/index.js';
import { median } from './load.mjs';
import { options } from './options.mjs';

const args = options();
const SECONDS = Number(args.seconds ?? 0.5);
const ROUNDS = Number(args.rounds ?? 5);
const AUD = 'https://idp.example.com/oauth/token';

const keys = {
  RS256: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  PS256: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  EdDSA: generateKeyPairSync('ed25519').privateKey,
};
const SECRET = 'a-client-secret-of-at-least-32-bytes-0123456789';

/** Runs `task` (async) for SECONDS with `concurrency` in flight; the mean time per task and the rate. */
async function measure(task, concurrency = 1) {
  for (let i = 0; i < 50; i++) await task(i);
  let done = 0;
  const started = performance.now();
  const until = started + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) await task(done++);
    }),
  );
  const elapsedMs = performance.now() - started;
  return { perOpUs: (elapsedMs * 1000 * concurrency) / done, perSecond: Math.round((done * 1000) / elapsedMs) };
}

const print = (line) => process.stdout.write(`${line}\n`);

print(`Node ${process.version}, ${SECONDS}s per measurement, ${ROUNDS} interleaved rounds in part 2 (median)\n`);
print('1. signing one assertion');
print('| alg | one at a time: µs per assertion | 32 in flight: assertions/s |');
print('|---|---|---|');
const signers = {
  ...Object.fromEntries(Object.entries(keys).map(([alg, key]) => [alg, assertionSigner(readAssertionKey(key, alg, undefined), 'client')])),
  HS256: assertionSigner(secretAssertionKey(SECRET, 'HS256', undefined), 'client'),
};
for (const [alg, sign] of Object.entries(signers)) {
  const alone = await measure(() => sign(AUD));
  const parallel = await measure(() => sign(AUD), 32);
  print(`| ${alg} | ${alone.perOpUs.toFixed(0)} | ${parallel.perSecond} |`);
}

// Part 2: the router in this process, a loopback upstream that answers every refresh at once.
const upstream = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end('{"access_token":"at","refresh_token":"rt-next","token_type":"Bearer","expires_in":3600}');
  });
});
upstream.listen(0, '127.0.0.1');
await once(upstream, 'listening');
const tokenUrl = `http://127.0.0.1:${upstream.address().port}/token`;

async function hostFor(auth) {
  const app = express();
  const rotationOff = { coalesce: false, reuseGraceMs: 0, reuseDetectionMs: 0 };
  app.use(ninjaAuth({ upstream: { tokenUrl }, clientId: 'client', ...rotationOff, ...auth }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function refresh(port, i) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/auth/refresh_token', method: 'POST', agent, headers: { authorization: `Bearer rt-${i}`, 'content-length': 0 } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

print('\n2. a whole refresh through the router, one at a time (router, upstream and client in one process)');
print('| client authentication | µs per refresh | added by the assertion |');
print('|---|---|---|');
const methods = [
  ['client_secret_post', { clientSecret: SECRET }],
  ['client_secret_jwt HS256', { clientSecret: SECRET, clientAuth: 'client_secret_jwt' }],
  ['private_key_jwt RS256', { clientAssertionKey: keys.RS256 }],
  ['private_key_jwt ES256', { clientAssertionKey: keys.ES256 }],
  ['private_key_jwt EdDSA', { clientAssertionKey: keys.EdDSA }],
];
const hosts = [];
for (const [name, auth] of methods) hosts.push({ name, server: await hostFor(auth), samples: [] });
// Interleaved rounds, the median of each: the machine's noise falls on every method alike.
for (let round = 0; round < ROUNDS; round++) {
  for (const host of hosts) host.samples.push((await measure((i) => refresh(host.server.address().port, i))).perOpUs);
}
const baseline = median(hosts[0].samples);
for (const { name, server, samples } of hosts) {
  const perOpUs = median(samples);
  print(`| ${name} | ${perOpUs.toFixed(0)} | ${name === 'client_secret_post' ? '—' : `${perOpUs >= baseline ? '+' : ''}${(perOpUs - baseline).toFixed(0)} µs`} |`);
  server.closeAllConnections();
  server.close();
}
agent.destroy();
upstream.closeAllConnections();
upstream.close();
