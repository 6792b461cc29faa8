import http from 'node:http';
import { format } from 'node:util';
import createDebug from 'debug';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../src/index.js';
import { hostApp } from '../helpers/host.js';
import { type Listening, listen, type RotatingUpstream, rotatingUpstream } from '../helpers/servers.js';

// What the router still does after the reply has gone out: the store learning the answer. The caller already has
// the answer, and the request was counted; a failure there must not reach the caller, nor count the request again.
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  createDebug.disable();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** POSTs over `agent`; the answer's status and exact bytes, and whether it went over a connection used before. */
function post(agent: http.Agent, origin: string, refreshToken: string) {
  return new Promise<{ status: number; body: Buffer; reusedSocket: boolean }>((resolve, reject) => {
    const req = http.request(`${origin}/auth/refresh_token`, { method: 'POST', agent, headers: { authorization: `Bearer ${refreshToken}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), reusedSocket: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('after the answer', () => {
  it('a failure to store the answer is logged; the caller keeps its answer and its connection, and the request counts once', async () => {
    const upstream: RotatingUpstream = await rotatingUpstream();
    cleanups.push(() => upstream.close());
    const lines: string[] = [];
    createDebug.enable('ninja-auth:*');
    createDebug.log = (...args: unknown[]) => void lines.push(format(...args));
    const rotations: string[] = [];
    const router: Listening = await listen(hostApp({ upstream: { tokenUrl: upstream.url }, hooks: { onRotation: (e) => void rotations.push(e.tokens.refreshToken ?? '') } }));
    cleanups.push(() => router.close());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const storing = vi.spyOn(MemoryStore.prototype, 'writeBytes').mockImplementationOnce(() => {
      throw new Error('the store broke');
    });

    const first = await post(agent, router.origin, upstream.login());
    expect(first.status).toBe(200);
    const successor = JSON.parse(first.body.toString('utf8')).refresh_token as string;
    expect(storing).toHaveBeenCalledTimes(1);
    const second = await post(agent, router.origin, successor);
    expect(second.status).toBe(200);
    expect(second.reusedSocket).toBe(true);
    expect(rotations).toEqual([successor, JSON.parse(second.body.toString('utf8')).refresh_token]);

    const failures = lines.filter((line) => line.includes('storing the answer failed'));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain('the store broke');
    // One line per request, each a 200: the first is not counted again as a failure.
    expect(lines.filter((line) => / refresh_token \d{3} /.test(line)).map((line) => / refresh_token (\d{3}) /.exec(line)![1])).toEqual(['200', '200']);
  });
});
