import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import axios from 'axios';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { IDLE_CONNECTION_MS, undiciAdapter, upstreamDispatchers } from '../../src/undici-transport.js';
import { hostApp } from '../helpers/host.js';
import { type Listening, listen } from '../helpers/servers.js';

// Upstreams that close pooled connections, made deterministic: instead of racing an idle timer, the server
// closes a connection at a chosen request, and counts what it received.
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

interface CountingUpstream extends Listening {
  readonly url: string;
  /** The refresh tokens of the requests the upstream read in full, in order. */
  readonly received: string[];
  connections: number;
  /** Requests that found their connection closed, unread. */
  closedIdle: number;
  /** The upstream's side of the connections still open. */
  openSockets(): Socket[];
}

const REPLY = (token: string): string => `{"access_token":"at-for-${token}","token_type":"Bearer"}`;

/**
 * `onRequest` decides, for the n-th request (1-based) of its connection, whether the upstream answers it
 * (`'answer'`), closes the connection without reading it, as one that timed out idle just then (`'closed-idle'`), or
 * does something else itself (a function).
 */
async function countingUpstream(
  onRequest: (nth: number, req: IncomingMessage, res: ServerResponse) => 'answer' | 'closed-idle' | ((received: () => void) => void),
  headers: Record<string, string> = {},
): Promise<CountingUpstream> {
  const perSocket = new WeakMap<Socket, number>();
  const received: string[] = [];
  const listening = await listen((req, res) => {
    const nth = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, nth);
    const action = onRequest(nth, req, res);
    if (action === 'closed-idle') {
      upstream.closedIdle++;
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const token = new URLSearchParams(Buffer.concat(chunks).toString()).get('refresh_token') ?? '';
      const markReceived = (): void => void received.push(token);
      if (action !== 'answer') {
        action(markReceived);
        return;
      }
      markReceived();
      res.writeHead(200, { 'content-type': 'application/json', ...headers });
      res.end(REPLY(token));
    });
  });
  const open = new Set<Socket>();
  const upstream: CountingUpstream = { ...listening, url: `${listening.origin}/token`, received, connections: 0, closedIdle: 0, openSockets: () => [...open] };
  listening.server.on('connection', (socket: Socket) => {
    upstream.connections++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  cleanups.push(() => listening.close());
  return upstream;
}

const refresh = (host: ReturnType<typeof hostApp>, token: string) => request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`);

describe('pooled upstream connections', () => {
  it('an upstream that closes a pooled connection without a Keep-Alive hint fails no refresh, and receives each once', async () => {
    // Every connection serves one request; the next one on it finds the connection closed.
    const upstream = await countingUpstream((nth) => (nth === 1 ? 'answer' : 'closed-idle'));
    const host = hostApp({ upstream: { tokenUrl: upstream.url } });
    const tokens = Array.from({ length: 20 }, (_, i) => `rt-${i}`);
    for (const token of tokens) {
      const res = await refresh(host, token);
      expect(res.status).toBe(200);
      expect(res.text).toBe(REPLY(token));
    }
    expect(upstream.received).toEqual(tokens);
    // The pool did reuse connections, and the upstream had closed them: without the retry these would have failed.
    expect(upstream.closedIdle).toBeGreaterThan(0);
  });

  it('a request the upstream read and then reset is not sent again: 502, received once', async () => {
    const upstream = await countingUpstream((_nth, req) => (received) => {
      received();
      req.socket.resetAndDestroy();
    });
    const res = await refresh(hostApp({ upstream: { tokenUrl: upstream.url } }), 'rt-seen');
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('upstream_unavailable');
    expect(upstream.received).toEqual(['rt-seen']);
    expect(upstream.connections).toBe(1);
  });

  it('the retry of a request with a client assertion carries a new one: no jti is sent twice', async () => {
    const assertions: string[] = [];
    const upstream = await countingUpstream((nth, req) => {
      if (nth === 1) return 'answer';
      // The reused connection: the upstream reads the request, then drops it without a byte of answer.
      return (received) => {
        received();
        req.socket.resetAndDestroy();
      };
    });
    upstream.server.prependListener('request', (req: IncomingMessage) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => assertions.push(new URLSearchParams(Buffer.concat(chunks).toString()).get('client_assertion') ?? ''));
    });
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, clientId: 'jwt-client', clientSecret: 'jwt-client-secret-of-32-bytes!!!', clientAuth: 'client_secret_jwt' });
    expect((await refresh(host, 'rt-1')).status).toBe(200);
    expect((await refresh(host, 'rt-2')).status).toBe(200);
    expect(upstream.received).toEqual(['rt-1', 'rt-2', 'rt-2']);
    const jtis = assertions.map((jwt) => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti);
    expect(jtis).toHaveLength(3);
    expect(new Set(jtis).size).toBe(3);
  });

  it('on a reused connection, a reset after the first bytes of the answer is not retried either', async () => {
    const upstream = await countingUpstream((nth, req, res) => {
      if (nth === 1) return 'answer';
      return (received) => {
        received();
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
        res.write('{"access_token":"at-', () => req.socket.resetAndDestroy());
      };
    });
    const host = hostApp({ upstream: { tokenUrl: upstream.url } });
    expect((await refresh(host, 'rt-1')).status).toBe(200);
    const res = await refresh(host, 'rt-2');
    expect(res.status).toBe(502);
    expect(upstream.received).toEqual(['rt-1', 'rt-2']);
    expect(upstream.connections).toBe(1);
  });

  it('the retry is made once, on a new connection: when that fails too, the caller gets 502', async () => {
    let connection = 0;
    const upstream = await countingUpstream((nth, req) => {
      if (nth > 1) return 'closed-idle';
      connection++;
      if (connection === 1) return 'answer';
      return (received) => {
        received();
        req.socket.resetAndDestroy();
      };
    });
    const host = hostApp({ upstream: { tokenUrl: upstream.url } });
    expect((await refresh(host, 'rt-1')).status).toBe(200);
    expect((await refresh(host, 'rt-2')).status).toBe(502);
    expect(upstream.received).toEqual(['rt-1', 'rt-2']);
    expect(upstream.connections).toBe(2);
  });

  it('timeoutMs bounds both attempts together: a retry that hangs ends in 504 at the one deadline', async () => {
    let connection = 0;
    const upstream = await countingUpstream((nth) => {
      if (nth > 1) return 'closed-idle';
      connection++;
      return connection === 1 ? 'answer' : () => undefined;
    });
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, timeoutMs: 200 });
    expect((await refresh(host, 'rt-1')).status).toBe(200);
    const res = await refresh(host, 'rt-2');
    expect(res.status).toBe(504);
    expect(res.body.error).toBe('upstream_timeout');
    expect(upstream.connections).toBe(2);
  });

  it('Keep-Alive: timeout=1 is honoured: a connection the upstream will close within a second is not reused', async () => {
    const upstream = await countingUpstream((nth) => (nth === 1 ? 'answer' : 'closed-idle'), { 'keep-alive': 'timeout=1' });
    const host = hostApp({ upstream: { tokenUrl: upstream.url } });
    for (const token of ['rt-1', 'rt-2', 'rt-3']) expect((await refresh(host, token)).status).toBe(200);
    expect(upstream.received).toEqual(['rt-1', 'rt-2', 'rt-3']);
    expect(upstream.closedIdle).toBe(0);
    expect(upstream.connections).toBe(3);
  });
});

describe('the transport’s connections', () => {
  async function pooledAfterOneRequest(headers: Record<string, string>, idleMs?: number) {
    const upstream = await countingUpstream(() => 'answer', headers);
    // The upstream's own idle limit out of the way, and with it its Keep-Alive hint: whatever closes the
    // connection here is the client.
    upstream.server.keepAliveTimeout = 0;
    const dispatchers = upstreamDispatchers({}, idleMs);
    cleanups.push(() => dispatchers.destroy());
    const client = axios.create({ adapter: undiciAdapter(dispatchers), responseType: 'arraybuffer', validateStatus: () => true });
    const res = await client.post(upstream.url, 'grant_type=refresh_token&refresh_token=rt-1');
    expect(res.status).toBe(200);
    expect(upstream.openSockets()).toHaveLength(1);
    return { dispatchers, upstream, client };
  }

  it('the idle limit is 4 s, below the 5 s of common servers', () => {
    expect(IDLE_CONNECTION_MS).toBe(4000);
  });

  it('an idle pooled connection is closed by the client once the idle limit has passed; the next request opens a new one', async () => {
    const { upstream, client } = await pooledAfterOneRequest({}, 100);
    await once(upstream.openSockets()[0]!, 'close');
    expect((await client.post(upstream.url, 'grant_type=refresh_token&refresh_token=rt-2')).status).toBe(200);
    expect(upstream.connections).toBe(2);
    expect(upstream.closedIdle).toBe(0);
  });

  it('a Keep-Alive: timeout= hint shorter than the idle limit shortens it (here a minute, the hint 2 s)', async () => {
    const { upstream } = await pooledAfterOneRequest({ 'keep-alive': 'timeout=2' }, 60_000);
    // Neither side would close it within the test's timeout but for the hint.
    await once(upstream.openSockets()[0]!, 'close');
    expect(upstream.openSockets()).toHaveLength(0);
  });

  it('a request cut off by destroy() (a close() that ran out of time) is not sent again', async () => {
    let held = 0;
    let requests = 0;
    // The first request is answered; the second, wherever it lands, is read and then held.
    const upstream = await countingUpstream(() => (++requests === 1 ? 'answer' : (received) => {
      received();
      held++;
    }));
    const dispatchers = upstreamDispatchers();
    cleanups.push(() => dispatchers.destroy());
    const client = axios.create({ adapter: undiciAdapter(dispatchers), responseType: 'arraybuffer', validateStatus: () => true });
    expect((await client.post(upstream.url, 'grant_type=refresh_token&refresh_token=rt-1')).status).toBe(200);
    // Let the connection go back to the pool, so that the second request reuses it (checked below).
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    const pending = client.post(upstream.url, 'grant_type=refresh_token&refresh_token=rt-2').then(() => 'answered', (error: { code?: string }) => error.code);
    await new Promise<void>((resolve) => {
      const check = (): void => void (held === 1 ? resolve() : setImmediate(check));
      check();
    });
    dispatchers.destroy();
    expect(await pending).not.toBe('answered');
    expect(upstream.received).toEqual(['rt-1', 'rt-2']);
    expect(upstream.connections).toBe(1);
  });

  it('destroy() closes the pooled connections, on the upstream’s side too', async () => {
    const { dispatchers, upstream } = await pooledAfterOneRequest({});
    const closedUpstream = once(upstream.openSockets()[0]!, 'close');
    dispatchers.destroy();
    await closedUpstream;
    expect(upstream.openSockets()).toHaveLength(0);
  });
});
