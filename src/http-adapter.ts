import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { type AxiosAdapter, AxiosError, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';

/**
 * How long a pooled connection may sit idle before it is dropped: below the 5 s that Node's and Apache's servers
 * wait by default (load balancers mostly wait 60 s). A `Keep-Alive: timeout=N` hint from the upstream shortens it
 * to N - 1 s (Node's agent reads the hint itself, and does not reuse the connection at all for N ≤ 1).
 */
export const IDLE_CONNECTION_MS = 4000;

/** The transport's connections: keep-alive pools, and fresh-connection agents for the one retry. */
export interface UpstreamAgents {
  readonly http: http.Agent;
  readonly https: https.Agent;
  /** Never reuse a connection: a retry must not land on another stale one. Same TLS options as `https`. */
  readonly fresh: { readonly http: http.Agent; readonly https: https.Agent };
  /** Closes every pooled connection, idle or not; for shutdown. After it, nothing is retried. */
  destroy(): void;
  /** True once `destroy()` was called: a request its sockets' end cut off failed for that, not for a stale pool. */
  readonly released: boolean;
}

/** The agents of the default client; `tls` (client certificate, CAs) applies to every https connection. */
export function upstreamAgents(tls: https.AgentOptions = {}): UpstreamAgents {
  const pooled = { keepAlive: true, timeout: IDLE_CONNECTION_MS };
  const agents = {
    http: new http.Agent(pooled),
    https: new https.Agent({ ...tls, ...pooled }),
    fresh: { http: new http.Agent({ keepAlive: false }), https: new https.Agent({ ...tls, keepAlive: false }) },
  };
  let released = false;
  return {
    ...agents,
    destroy: () => {
      released = true;
      for (const agent of [agents.http, agents.https, agents.fresh.http, agents.fresh.https]) agent.destroy();
    },
    get released() {
      return released;
    },
  };
}

/**
 * A request config that can be made again for a second attempt: a new body with fresh client authentication (a
 * new client assertion, whose `jti` must never be sent twice).
 */
export type RenewableRequestConfig = InternalAxiosRequestConfig & { readonly renewBody?: () => Promise<string> };

/**
 * The transport of the default axios instance: one node:http request on a keep-alive agent, the body
 * collected as raw bytes. axios's own http adapter does much more per request (redirect handling, proxy
 * lookup from the environment, progress events, a keep-alive call on every socket), none of which a token
 * request needs, and which cost more than the proxying itself. Callers who need any of it pass `httpClient`.
 */
export function leanHttpAdapter(agents: UpstreamAgents): AxiosAdapter {
  const targets = new Map<string, Target>();
  // Keyed by what the request names, so a known URL costs a lookup, not a parse.
  const targetOf = (config: InternalAxiosRequestConfig): Target => {
    const key = `${config.baseURL ?? ''} ${config.url ?? ''}`;
    let target = targets.get(key);
    if (target === undefined) {
      target = parseTarget(new URL(config.url ?? '', config.baseURL).href, agents);
      if (targets.size < 32) targets.set(key, target);
    }
    return target;
  };
  return (config) => exchange(config, targetOf(config), agents);
}

interface Target {
  readonly transport: typeof http | typeof https;
  readonly options: http.RequestOptions;
  /** Where the retry goes: a new connection, never a pooled one. */
  readonly fresh: http.Agent;
}

function parseTarget(href: string, agents: UpstreamAgents): Target {
  const url = new URL(href);
  const secure = url.protocol === 'https:';
  return {
    transport: secure ? https : http,
    options: {
      protocol: url.protocol,
      hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      agent: secure ? agents.https : agents.http,
    },
    fresh: secure ? agents.fresh.https : agents.fresh.http,
  };
}

const DECODERS: Readonly<Record<string, () => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress>> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

/**
 * The errors of a connection that the upstream had already closed: what a pooled connection that timed out
 * on the upstream's side gives a request written onto it.
 */
const STALE_CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE']);

function exchange(config: RenewableRequestConfig, target: Target, agents: UpstreamAgents): Promise<AxiosResponse> {
  return new Promise((resolve, reject) => {
    const firstBody = requestBody(config.data);
    const headers = outgoingHeaders(config);
    const method = (config.method ?? 'get').toUpperCase();
    const signal = config.signal as AbortSignal | undefined;
    let current: http.ClientRequest | undefined;
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    const onAbort = (): void => fail(new AxiosError('canceled', AxiosError.ERR_CANCELED, config, current));
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(deadline);
      return true;
    };
    function fail(error: AxiosError): void {
      if (!finish()) return;
      current?.destroy();
      reject(error);
    }

    /**
     * One attempt. On a pooled connection, a failure before any byte of a response came back means the
     * upstream had closed the connection while it sat idle: the request is sent once more, on a new connection.
     * Once a byte has come back, or on a new connection, a failure is final: the upstream may have seen it.
     */
    const send = (agent: http.Agent, mayRetry: boolean, body: Buffer | undefined): void => {
      const req = target.transport.request({ ...target.options, agent, method, headers: body === undefined ? headers : { ...headers, 'content-length': String(body.length) } });
      current = req;
      let socket: Socket | undefined;
      let bytesReadBefore = 0;
      let responded = false;
      req.on('socket', (assigned) => {
        socket = assigned;
        bytesReadBefore = assigned.bytesRead;
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (settled) return;
        const unanswered = !responded && socket !== undefined && socket.bytesRead === bytesReadBefore;
        if (mayRetry && !agents.released && req.reusedSocket && unanswered && STALE_CONNECTION_ERRORS.has(error.code ?? '')) {
          retry();
          return;
        }
        fail(AxiosError.from(error, error.code, config, req));
      });
      req.on('response', (res) => {
        responded = true;
        receive(req, res);
      });
      req.end(body);
    };

    /** Once, on a new connection; with a body made anew where the request carries one-time credentials. */
    const retry = (): void => {
      const { renewBody } = config;
      if (renewBody === undefined) {
        send(target.fresh, false, firstBody);
        return;
      }
      renewBody().then(
        (data) => {
          if (!settled) send(target.fresh, false, requestBody(data));
        },
        (error: unknown) => fail(AxiosError.from(error as Error, 'ERR_RENEW', config, current)),
      );
    };

    const receive = (req: http.ClientRequest, res: http.IncomingMessage): void => {
      const responseHeaders: Record<string, string | string[] | undefined> = { ...res.headers };
      let stream: Readable = res;
      const decode = config.decompress === false ? undefined : DECODERS[String(res.headers['content-encoding']).toLowerCase()];
      if (decode !== undefined) {
        stream = res.pipe(decode());
        delete responseHeaders['content-encoding'];
        delete responseHeaders['content-length'];
      }
      const limit = config.maxContentLength ?? -1;
      const chunks: Buffer[] = [];
      let size = 0;
      const broken = (error: NodeJS.ErrnoException): void => fail(AxiosError.from(error, error.code ?? AxiosError.ERR_BAD_RESPONSE, config, req));
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (limit > -1 && size > limit) {
          fail(new AxiosError(`maxContentLength size of ${limit} exceeded`, AxiosError.ERR_BAD_RESPONSE, config, req));
          return;
        }
        chunks.push(chunk);
      });
      stream.on('error', broken);
      res.on('error', broken);
      res.on('close', () => {
        if (!res.complete) broken(Object.assign(new Error('the upstream closed the connection mid-body'), { code: 'ECONNRESET' }));
      });
      stream.on('end', () => {
        const bytes = Buffer.concat(chunks, size);
        const response: AxiosResponse = {
          data: config.responseType === 'arraybuffer' ? bytes : bytes.toString('utf8'),
          status: res.statusCode ?? 0,
          statusText: res.statusMessage ?? '',
          headers: responseHeaders,
          config,
          request: req,
        };
        if (!finish()) return;
        const validate = config.validateStatus;
        if (!validate || validate(response.status)) {
          resolve(response);
        } else {
          const code = response.status < 500 ? AxiosError.ERR_BAD_REQUEST : AxiosError.ERR_BAD_RESPONSE;
          reject(new AxiosError(`Request failed with status code ${response.status}`, code, config, req, response));
        }
      });
    };

    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    // Here `timeout` bounds the whole exchange, body included, retry included, not only a silent socket.
    if (config.timeout) {
      deadline = setTimeout(() => fail(new AxiosError(`timeout of ${config.timeout}ms exceeded`, AxiosError.ECONNABORTED, config, current)), config.timeout);
    }
    send(target.options.agent as http.Agent, true, firstBody);
  });
}

function requestBody(data: unknown): Buffer | undefined {
  if (data === undefined || data === null) return undefined;
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof URLSearchParams) return Buffer.from(data.toString());
  return Buffer.from(JSON.stringify(data));
}

/** Flattened once per header set: the default client sends one of a few sets it built once. */
const flattened = new WeakMap<object, Record<string, string | string[]>>();

function outgoingHeaders(config: InternalAxiosRequestConfig): Readonly<Record<string, string | string[]>> {
  let flat = flattened.get(config.headers);
  if (flat === undefined) {
    flat = flattenHeaders(config);
    flattened.set(config.headers, flat);
  }
  return flat;
}

function flattenHeaders(config: InternalAxiosRequestConfig): Record<string, string | string[]> {
  const flat: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(config.headers.toJSON())) {
    if (typeof value === 'string' || typeof value === 'number') flat[name] = String(value);
    else if (Array.isArray(value)) flat[name] = value.map(String);
  }
  return flat;
}
