import { once } from 'node:events';
import net from 'node:net';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamErrorEvent } from '../../src/index.js';
import { MAX_UPSTREAM_BODY_BYTES } from '../../src/upstream.js';
import { eventually, hostApp } from '../helpers/host.js';
import { closedPortUrl, rawUpstream } from '../helpers/servers.js';

const SECRET = 'client-secret-that-must-not-leak';
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** A TCP server that does whatever `onSocket` says with each connection: for faults below HTTP. */
async function tcpUpstream(onSocket: (socket: net.Socket) => void): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`;
}

async function refreshThrough(tokenUrl: string, timeoutMs = 10_000) {
  const errors: UpstreamErrorEvent[] = [];
  const res = await request(hostApp({ upstream: { tokenUrl }, clientId: 'client', clientSecret: SECRET, timeoutMs, hooks: { onUpstreamError: (e) => void errors.push(e) } }))
    .post('/auth/refresh_token')
    .set('authorization', 'Bearer rt-presented');
  return { res, errors };
}

function expectSafeRouterError(res: request.Response, status: number, error: string, tokenUrl: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(Object.keys(res.body).sort()).toEqual(['error', 'error_description']);
  expect(res.body.error).toBe(error);
  const text = res.text;
  for (const leak of [SECRET, tokenUrl, new URL(tokenUrl).host, 'rt-presented', 'at ', 'Error', 'axios', 'ECONN']) {
    expect(text).not.toContain(leak);
  }
}

describe('upstream faults', () => {
  it('closed port → 502 upstream_unavailable', async () => {
    const url = await closedPortUrl();
    const { res, errors } = await refreshThrough(url);
    expectSafeRouterError(res, 502, 'upstream_unavailable', url);
    await eventually(() => errors.length === 1);
    expect(errors[0]).toMatchObject({ type: 'upstream_error', status: 502, error: 'upstream_unavailable', endpoint: 'refresh_token' });
  });

  it('reset in the middle of the body → 502', async () => {
    const url = await tcpUpstream((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"access_token":"at-partial');
        setTimeout(() => socket.resetAndDestroy(), 20);
      });
    });
    const { res } = await refreshThrough(url);
    expectSafeRouterError(res, 502, 'upstream_unavailable', url);
  });

  it('an answer that is not HTTP → 502', async () => {
    const url = await tcpUpstream((socket) => {
      socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.6\r\nthis is not http\r\n\r\n'));
    });
    const { res } = await refreshThrough(url);
    expectSafeRouterError(res, 502, 'upstream_unavailable', url);
  });

  it('an upstream that never answers → 504 within timeoutMs', async () => {
    const url = await tcpUpstream(() => undefined);
    const { res, errors } = await refreshThrough(url, 300);
    expectSafeRouterError(res, 504, 'upstream_timeout', url);
    await eventually(() => errors.length === 1);
    expect(errors[0]).toMatchObject({ status: 504, error: 'upstream_timeout' });
  });

  it('headers on time but a body that drips past the deadline → 504 (the deadline covers the body)', async () => {
    const upstream = await rawUpstream((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"access_token":');
      const drip = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(drip));
    });
    cleanups.push(() => upstream.close());
    const { res } = await refreshThrough(upstream.url, 300);
    expectSafeRouterError(res, 504, 'upstream_timeout', upstream.url);
  });

  it('a body over the response cap → 502, nothing partial reaches the caller', async () => {
    const upstream = await rawUpstream((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"pad":"${'x'.repeat(MAX_UPSTREAM_BODY_BYTES)}"}`);
    });
    cleanups.push(() => upstream.close());
    const { res } = await refreshThrough(upstream.url);
    expectSafeRouterError(res, 502, 'upstream_unavailable', upstream.url);
  });
});
