import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/host.js';
import { type RawUpstream, rawUpstream } from './helpers/servers.js';

// The shutdown of the README, in a real process against the built package: SIGTERM in the middle of a refresh
// loses neither the caller's reply nor the hook that persists the rotated token; an idle app exits by itself.
const ROTATED = '{"access_token":"at-2","refresh_token":"rt-rotated-7","token_type":"Bearer"}';
let held: Array<() => void> = [];
let upstream: RawUpstream;
beforeAll(async () => {
  upstream = await rawUpstream((res) => {
    held.push(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(ROTATED);
    });
  });
});
afterAll(async () => {
  await upstream.close();
});

interface App {
  readonly child: ChildProcess;
  readonly port: number;
  readonly lines: Array<Record<string, unknown>>;
}

async function startApp(mode: 'signal' | 'abrupt' | 'idle'): Promise<App> {
  const child = spawn(process.execPath, ['test/helpers/shutdown-app.mjs', JSON.stringify({ tokenUrl: upstream.url, mode })], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: Array<Record<string, unknown>> = [];
  const reader = createInterface({ input: child.stdout! });
  reader.on('line', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  await eventually(() => lines.length > 0, 10_000);
  return { child, port: lines[0]!['port'] as number, lines };
}

function refresh(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/auth/refresh_token', headers: { authorization: 'Bearer rt-1', connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * SIGTERM while a refresh is at the upstream: the signal handler runs (the server stops accepting) before the
 * upstream answers. Resolves with the caller's reply and the process's exit code.
 */
async function sigtermMidRefresh(app: App): Promise<{ reply: { status: number; body: string }; code: number }> {
  held = [];
  const reply = refresh(app.port);
  await eventually(() => held.length === 1);
  app.child.kill('SIGTERM');
  await eventually(() => app.lines.some((line) => line['closing'] === true));
  held.shift()!();
  const answered = await reply;
  const [code] = (await once(app.child, 'exit')) as [number];
  return { reply: answered, code };
}

describe('graceful shutdown of a real process', () => {
  it('SIGTERM mid-refresh: the caller gets the rotated reply, the hook persists it, then the process exits 0', async () => {
    const app = await startApp('signal');
    const { reply, code } = await sigtermMidRefresh(app);
    expect(reply).toEqual({ status: 200, body: ROTATED });
    expect(code).toBe(0);
    expect(app.lines.slice(1)).toEqual([{ closing: true }, { persisted: 'rt-rotated-7', replayed: false }, { closed: true }]);
  });

  it('the control: exiting once server.close() calls back, without router.close(), loses the hook', async () => {
    const app = await startApp('abrupt');
    const { reply } = await sigtermMidRefresh(app);
    expect(reply).toEqual({ status: 200, body: ROTATED });
    expect(app.lines.some((line) => line['persisted'] !== undefined)).toBe(false);
  });

  it('an idle app exits by itself after server.close() and router.close(): no pool or timer keeps it alive', async () => {
    held = [];
    const app = await startApp('idle');
    const reply = refresh(app.port);
    await eventually(() => held.length === 1);
    held.shift()!();
    expect((await reply).status).toBe(200);
    await eventually(() => app.lines.some((line) => line['persisted'] !== undefined));
    app.child.stdin!.end('close\n');
    const [code] = (await once(app.child, 'exit')) as [number];
    expect(code).toBe(0);
    expect(app.lines.at(-1)).toEqual({ closed: true });
  });
});
