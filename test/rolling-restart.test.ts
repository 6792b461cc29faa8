import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/host.js';
import { type OidcUnderTest, oidcClient, startOidcProvider } from './helpers/oidc.js';
import { type RedisServer, testRedis, uniquePrefix } from './helpers/redis.js';

// A rolling restart as it happens in production: three instances of the built package behind one Redis, each in
// turn sent SIGTERM and replaced while sessions keep refreshing against oidc-provider with strict rotation (a
// reused refresh token revokes the grant). No session may be lost, and every rotation the provider made must
// have been persisted by an onRotation hook somewhere.
const CLIENT_ID = 'rolling-app';
const CLIENT_SECRET = 'rolling-secret-4b7e';
const SESSIONS = 6;
const ROUNDS = 12;

let op: OidcUnderTest;
let redis: RedisServer;
beforeAll(async () => {
  op = await startOidcProvider([oidcClient(CLIENT_ID, CLIENT_SECRET, 'client_secret_post')]);
  redis = await testRedis();
});
afterAll(async () => {
  await op.close();
  await redis.stop();
});

interface Instance {
  readonly child: ChildProcess;
  readonly port: number;
  readonly lines: Array<Record<string, unknown>>;
}

async function startInstance(prefix: string): Promise<Instance> {
  const config = { tokenUrl: op.tokenUrl, mode: 'signal', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redisUrl: redis.url, prefix };
  const child = spawn(process.execPath, ['test/helpers/shutdown-app.mjs', JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  await eventually(() => lines.length > 0, 10_000);
  return { child, port: lines[0]!['port'] as number, lines };
}

/** One refresh against one instance: the new refresh token, `'refused'` (the session is lost), or `'unreachable'`. */
function refreshAt(port: number, token: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/auth/refresh_token', headers: { authorization: `Bearer ${token}`, connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        if (res.statusCode === 200) resolve((JSON.parse(Buffer.concat(chunks).toString()) as { refresh_token: string }).refresh_token);
        else resolve(res.statusCode === 503 ? 'unreachable' : 'refused');
      });
      res.on('error', () => resolve('unreachable'));
    });
    req.on('error', () => resolve('unreachable'));
    req.end();
  });
}

async function login(port: number): Promise<string> {
  const { code, codeVerifier, redirectUri } = await op.authorize(CLIENT_ID);
  const body = new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: codeVerifier, redirect_uri: redirectUri }).toString();
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve((JSON.parse(Buffer.concat(chunks).toString()) as { refresh_token: string }).refresh_token));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('a rolling restart of three instances behind Redis', () => {
  it('loses no refresh and no hook', async () => {
    const prefix = uniquePrefix();
    const live: Instance[] = await Promise.all([startInstance(prefix), startInstance(prefix), startInstance(prefix)]);
    const retired: Instance[] = [];
    let next = 0;
    const pick = (): Instance => live[next++ % live.length]!;

    /** A session refreshes round after round; a refresh that reaches no instance is retried on the next one with the same token. */
    const handedOut: string[] = [];
    const session = async (): Promise<boolean> => {
      let token = await login(pick().port);
      for (let round = 0; round < ROUNDS; round++) {
        let answer = 'unreachable';
        for (let attempt = 0; attempt < 10 && answer === 'unreachable'; attempt++) answer = await refreshAt(pick().port, token);
        if (answer === 'refused' || answer === 'unreachable') return false;
        token = answer;
        handedOut.push(token);
      }
      return true;
    };

    const restarts = (async () => {
      for (let i = 0; i < 3; i++) {
        await eventually(() => handedOut.length >= (i + 1) * 12, 20_000);
        const old = live.shift()!;
        live.push(await startInstance(prefix));
        old.child.kill('SIGTERM');
        const [code] = (await once(old.child, 'exit')) as [number];
        expect(code).toBe(0);
        retired.push(old);
      }
    })();

    const kept = await Promise.all(Array.from({ length: SESSIONS }, session));
    await restarts;
    expect(kept.filter((ok) => !ok)).toHaveLength(0);
    expect(retired).toHaveLength(3);

    // Every refresh token the provider rotated to was persisted by some instance's hook, none cut off by a restart.
    for (const instance of live) instance.child.kill('SIGTERM');
    await Promise.all(live.map((instance) => once(instance.child, 'exit')));
    const persisted = new Set(
      [...retired, ...live].flatMap((instance) => instance.lines.filter((line) => line['replayed'] === false).map((line) => line['persisted'] as string)),
    );
    for (const token of handedOut) expect(persisted.has(token)).toBe(true);
    for (const instance of retired) expect(instance.lines.at(-1)).toEqual({ closed: true });
  });
});
