// `npm run example`: starts the embedded provider and the host app on loopback, then walks through the main
// job as a client would: log in, refresh twice, retry after a lost reply, revoke, and see the next refresh
// refused. REDIS_URL=redis://… npm run example uses the Redis store. `npm run example -- --private-key-jwt`
// authenticates the client with a signed assertion (private_key_jwt) instead of its secret: the provider
// holds only the public key and verifies every assertion. It ends by reading ninja-auth's refresh outcome
// counters from the Prometheus endpoint of the host app (METRICS_PORT, any free port by default).
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { createProvider, DEMO_CLIENT, DEMO_USER } from './provider.js';

const print = (/** @type {string} */ line) => process.stdout.write(`${line}\n`);
const short = (/** @type {string | undefined} */ token) => (token === undefined ? '(none)' : `${token.slice(0, 10)}…`);

/** @param {import('express').Express} app */
async function listen(app) {
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { server, origin: `http://127.0.0.1:${address.port}` };
}

const usePrivateKeyJwt = process.argv.includes('--private-key-jwt');
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const { d: _private, ...publicKey } = privateKey.export({ format: 'jwk' });
const KEY_CLIENT = { id: 'demo-app-pkjwt', publicKey, grants: DEMO_CLIENT.grants };
const demoProvider = createProvider({ clients: [DEMO_CLIENT, KEY_CLIENT] });
const provider = await listen(demoProvider.app);
process.env['NINJA_AUTH_TOKEN_URL'] = `${provider.origin}/oauth/token`;
process.env['NINJA_AUTH_REVOKE_URL'] = `${provider.origin}/oauth/revoke`;
if (usePrivateKeyJwt) {
  // The private key as a JWK in the environment, as a deployment would hold it (a PEM works the same way).
  process.env['NINJA_AUTH_CLIENT_ID'] = KEY_CLIENT.id;
  process.env['NINJA_AUTH_CLIENT_ASSERTION_KEY'] = JSON.stringify({ ...privateKey.export({ format: 'jwk' }), kid: 'demo-key-1' });
} else {
  process.env['NINJA_AUTH_CLIENT_ID'] = DEMO_CLIENT.id;
  process.env['NINJA_AUTH_CLIENT_SECRET'] = DEMO_CLIENT.secret;
}
process.env['METRICS_PORT'] ??= '0';
const { createHostApp, metricsFromEnvironment, storeFromEnvironment } = await import('./app.js');
const metricsEndpoint = await metricsFromEnvironment();
const store = await storeFromEnvironment();
const host = await listen(createHostApp(print, store.store));

/** @param {string} path @param {Record<string, string>} body @param {Record<string, string>} [headers] */
async function post(path, body, headers = {}) {
  const response = await fetch(`${host.origin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
  const text = await response.text();
  return { status: response.status, text, json: text === '' ? {} : JSON.parse(text) };
}

let failed = false;
/** @param {boolean} ok @param {string} what */
const expect = (ok, what) => {
  print(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};

print(`provider on ${provider.origin}, host app with ninja-auth on ${host.origin} (${store.description})`);
print(`client authentication: ${usePrivateKeyJwt ? 'private_key_jwt (ES256), the provider holds only the public key' : 'client_secret_post'}\n`);

print(`1. log in: POST /auth/token username=${DEMO_USER.username} password=…`);
const login = await post('/auth/token', { username: DEMO_USER.username, password: DEMO_USER.password });
print(`  ← ${login.status} access ${short(login.json.access_token)} refresh ${short(login.json.refresh_token)}`);
expect(login.status === 200 && typeof login.json.refresh_token === 'string', 'logged in, got a refresh token');

let refreshToken = login.json.refresh_token;
let previousToken = refreshToken;
for (const round of [1, 2]) {
  previousToken = refreshToken;
  print(`\n${round + 1}. refresh #${round}: POST /auth/refresh_token with Authorization: Bearer ${short(refreshToken)}`);
  const refreshed = await post('/auth/refresh_token', {}, { authorization: `Bearer ${refreshToken}` });
  print(`  ← ${refreshed.status} refresh ${short(refreshed.json.refresh_token)}`);
  expect(refreshed.status === 200 && refreshed.json.refresh_token !== refreshToken, 'a new refresh token, exactly as the provider issued it');
  refreshToken = refreshed.json.refresh_token;
}

print(`\n4. the reply to refresh #2 was lost: the client retries with the token it still holds, ${short(previousToken)}`);
const retried = await post('/auth/refresh_token', {}, { authorization: `Bearer ${previousToken}` });
print(`  ← ${retried.status} refresh ${short(retried.json.refresh_token)}`);
expect(retried.status === 200 && retried.json.refresh_token === refreshToken, 'the same reply replayed: the session survives the lost reply');

print(`\n5. revoke: POST /auth/revoke_token token=${short(refreshToken)}`);
const revoked = await post('/auth/revoke_token', { token: refreshToken });
print(`  ← ${revoked.status}`);
expect(revoked.status === 200, 'revoked');

print(`\n6. refresh with the revoked token`);
const refused = await post('/auth/refresh_token', { refresh_token: refreshToken });
print(`  ← ${refused.status} ${refused.text}`);
expect(refused.status === 400 && refused.json.error === 'invalid_grant', "refused with the provider's own error, passed through");

if (usePrivateKeyJwt) {
  const { tokenRequests, revokeRequests, assertionsVerified } = demoProvider.stats;
  print(`\nthe provider verified ${assertionsVerified} assertions for ${tokenRequests + revokeRequests} requests`);
  expect(assertionsVerified === tokenRequests + revokeRequests, 'every upstream request carried its own valid assertion');
}

if (metricsEndpoint !== undefined) {
  print(`\n7. the metrics: GET ${metricsEndpoint.url} (Prometheus text format), the refresh outcomes`);
  const exposition = await (await fetch(metricsEndpoint.url)).text();
  const outcomes = exposition.split('\n').filter((line) => line.startsWith('ninja_auth_refresh_outcomes'));
  for (const line of outcomes) print(`  ${line}`);
  const count = (/** @type {string} */ outcome) => Number(outcomes.find((line) => line.includes(`ninja_auth_outcome="${outcome}"`))?.split(' ').at(-1) ?? 0);
  expect(count('rotated') === 2 && count('replayed') === 1 && count('rejected') === 1, 'two rotations, one replay and one rejected refresh counted');
  await metricsEndpoint.close();
}

await new Promise((resolve) => setTimeout(resolve, 50));
host.server.closeAllConnections();
provider.server.closeAllConnections();
host.server.close();
provider.server.close();
store.close();
print(failed ? '\nthe demo FAILED' : '\nthe demo passed: every token the client holds is the one the provider issued');
process.exitCode = failed ? 1 : 0;
