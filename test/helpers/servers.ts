import { once } from 'node:events';
import http, { type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createProvider } from '../../example-app/provider.js';

export interface Listening {
  readonly server: Server;
  readonly origin: string;
  close(): Promise<void>;
}

/** Starts a server on a free loopback port. */
export async function listen(handler: RequestListener): Promise<Listening> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    origin: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A request as the upstream saw it. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly form: URLSearchParams;
}

export interface RawUpstream extends Listening {
  readonly url: string;
  readonly requests: SeenRequest[];
}

/**
 * A bare node:http upstream for what no real provider does (or for exact control of the reply): the handler
 * writes the answer itself, after the request body has been read and recorded.
 */
export async function rawUpstream(reply: (res: ServerResponse, seen: SeenRequest) => void): Promise<RawUpstream> {
  const requests: SeenRequest[] = [];
  const listening = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, form: new URLSearchParams(body) };
      requests.push(seen);
      reply(res, seen);
    });
  });
  return { ...listening, url: `${listening.origin}/token`, requests };
}

/** An upstream that answers every request with these exact bytes. */
export function fixedReply(status: number, headers: Record<string, string | string[]>, body: string | Buffer): (res: ServerResponse) => void {
  return (res) => {
    res.writeHead(status, headers);
    res.end(body);
  };
}

/** A loopback URL on which nothing listens. */
export async function closedPortUrl(): Promise<string> {
  const listening = await listen(() => undefined);
  await listening.close();
  return `${listening.origin}/token`;
}

export interface ProviderUnderTest extends Listening {
  readonly tokenUrl: string;
  readonly revokeUrl: string;
  readonly stats: ReturnType<typeof createProvider>['stats'];
  /** Every body the provider wrote, in order: what the router must have passed on byte for byte. */
  readonly sentBodies: Buffer[];
}

/** Hands `sink` the exact bytes a response wrote, once it ends. */
export function tapBody(res: ServerResponse, sink: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (chunk !== undefined && chunk !== null) chunks.push(Buffer.from(chunk as string));
    return write(chunk, ...rest);
  }) as ServerResponse['write'];
  res.end = ((...args: unknown[]) => {
    const chunk = args[0];
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') chunks.push(Buffer.from(chunk as string));
    sink(Buffer.concat(chunks));
    return end(...args);
  }) as ServerResponse['end'];
}

/** The embedded @node-oauth/oauth2-server provider, with a tap on the bytes it sends. */
export async function startProvider(options?: Parameters<typeof createProvider>[0]): Promise<ProviderUnderTest> {
  const provider = createProvider(options);
  const sentBodies: Buffer[] = [];
  const listening = await listen((req, res) => {
    tapBody(res, (body) => sentBodies.push(body));
    provider.app(req, res);
  });
  return {
    ...listening,
    tokenUrl: `${listening.origin}/oauth/token`,
    revokeUrl: `${listening.origin}/oauth/revoke`,
    stats: provider.stats,
    sentBodies,
  };
}

export interface RotatingUpstream extends RawUpstream {
  /** Issues a fresh refresh token, as a login would. */
  login(): string;
  /** Upstream token calls so far. */
  readonly calls: () => number;
}

/**
 * A strict rotating token endpoint: each refresh token works once, and using it issues the next; `/revoke`
 * revokes. For exact
 * control of timing (`delayMs`) in race tests; provider-specific behaviour is tested against real providers.
 */
export async function rotatingUpstream(options: { delayMs?: number } = {}): Promise<RotatingUpstream> {
  const valid = new Set<string>();
  let issued = 0;
  const issue = (): string => {
    const token = `rt-${++issued}-${Math.random().toString(36).slice(2)}`;
    valid.add(token);
    return token;
  };
  const upstream = await rawUpstream((res, seen) => {
    const answer = (): void => {
      if (seen.url === '/revoke') {
        valid.delete(seen.form.get('token') ?? '');
        res.writeHead(200).end();
        return;
      }
      const presented = seen.form.get('refresh_token') ?? '';
      if (!valid.delete(presented)) {
        res.writeHead(400, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end('{"error":"invalid_grant","error_description":"refresh token already used"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ access_token: `at-${issued}`, refresh_token: issue(), token_type: 'Bearer', scope: seen.form.get('scope') ?? 'default' }));
    };
    if (options.delayMs) setTimeout(answer, options.delayMs);
    else answer();
  });
  return { ...upstream, login: issue, calls: () => upstream.requests.length };
}
