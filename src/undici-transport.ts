import diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { type AxiosAdapter, AxiosError, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { Agent, type Dispatcher } from 'undici';
import { DECODERS } from './content-encoding.js';

/**
 * How long a pooled connection may sit idle before it is dropped: below the 5 s that Node's and Apache's servers
 * wait by default (load balancers mostly wait 60 s). A `Keep-Alive: timeout=N` hint from the upstream shortens it
 * to N - 1 s, and with N ≤ 1 the connection is not reused at all (undici reads the hint itself).
 */
export const IDLE_CONNECTION_MS = 4000;

/** The transport's connections: a keep-alive pool, and an agent that never reuses one, for the one retry. */
export interface UpstreamDispatchers {
  readonly pooled: Agent;
  readonly fresh: Agent;
  /** Closes every connection, idle or not; for shutdown. After it, nothing is retried. */
  destroy(): void;
  /** True once `destroy()` was called: a request cut off then failed for that, not for a stale pool. */
  readonly released: boolean;
}

/** The dispatchers of the default client; `tls` (client certificate, CAs) applies to every https connection. */
/** What the TLS connections present and trust: the client certificate and its key, the CAs. */
export interface UpstreamTls {
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly passphrase?: string;
  readonly ca?: Array<string | Buffer>;
}

export function upstreamDispatchers(tls: UpstreamTls = {}, idleMs = IDLE_CONNECTION_MS): UpstreamDispatchers {
  // The router's own deadline (timeoutMs) bounds the whole exchange: undici's own timeouts stay out of its way.
  const common = { connect: { ...tls }, headersTimeout: 0, bodyTimeout: 0 };
  const pooled = new Agent({ ...common, keepAliveTimeout: idleMs, keepAliveTimeoutThreshold: 1000 });
  const fresh = new Agent({ ...common, pipelining: 0 });
  let released = false;
  return {
    pooled,
    fresh,
    destroy: () => {
      released = true;
      void pooled.destroy().catch(() => undefined);
      void fresh.destroy().catch(() => undefined);
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
 * The transport of the default axios instance: an undici dispatch, the body collected as raw bytes. axios's own
 * http adapter does much more per request (redirects, proxies from the environment, progress events), none of
 * which a token request needs. Callers who need any of it pass `httpClient`.
 */
export function undiciAdapter(dispatchers: UpstreamDispatchers): AxiosAdapter {
  watchSockets();
  const targets = new Map<string, Target>();
  // Keyed by what the request names, so a known URL costs a lookup, not a parse.
  const targetOf = (config: InternalAxiosRequestConfig): Target => {
    const key = `${config.baseURL ?? ''} ${config.url ?? ''}`;
    let target = targets.get(key);
    if (target === undefined) {
      const url = new URL(config.url ?? '', config.baseURL);
      target = { origin: url.origin, path: `${url.pathname}${url.search}` };
      if (targets.size < 32) targets.set(key, target);
    }
    return target;
  };
  return (config) => exchange(config as RenewableRequestConfig, targetOf(config), dispatchers);
}

interface Target {
  readonly origin: string;
  readonly path: string;
}

// Which connection a request went out on, and whether it had carried one before: undici tells this only on its
// diagnostics channel, published synchronously right after it hands the request its connection (onConnect).
const requestsSent = new WeakMap<Socket, number>();
let connecting: Attempt | undefined;
let watching = false;

function watchSockets(): void {
  if (watching) return;
  watching = true;
  diagnostics.subscribe('undici:client:sendHeaders', (message) => {
    const attempt = connecting;
    if (attempt === undefined) return;
    const { request, socket } = message as { request: object; socket: Socket };
    // Node's own fetch publishes on this channel too: only the request whose handler is this attempt counts.
    const ours = Object.getOwnPropertySymbols(request).some((symbol) => (request as Record<symbol, unknown>)[symbol] === attempt);
    if (!ours) return;
    connecting = undefined;
    const before = requestsSent.get(socket) ?? 0;
    requestsSent.set(socket, before + 1);
    attempt.sentOn(socket, before > 0);
  });
}

/**
 * The errors of a connection that the upstream had already closed: what a pooled connection that timed out on
 * the upstream's side gives a request written onto it.
 */
const STALE_CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/** One attempt of an exchange: an undici dispatch handler that collects the answer. */
class Attempt implements Dispatcher.DispatchHandlers {
  #socket: Socket | undefined;
  #bytesReadBefore = 0;
  #reused = false;
  #answering = false;
  #abort: ((error?: Error) => void) | undefined;
  status = 0;
  statusText = '';
  headers: Record<string, string | string[]> = {};
  readonly chunks: Buffer[] = [];
  size = 0;

  constructor(private readonly events: AttemptEvents) {}

  sentOn(socket: Socket, reused: boolean): void {
    this.#socket = socket;
    this.#bytesReadBefore = socket.bytesRead;
    this.#reused = reused;
  }

  /** On a pooled connection, and nothing of an answer came back: the upstream had closed it while it sat idle. */
  get failedUnanswered(): boolean {
    return this.#reused && !this.#answering && this.#socket !== undefined && this.#socket.bytesRead === this.#bytesReadBefore;
  }

  abort(error: Error): void {
    this.#abort?.(error);
  }

  onConnect(abort: (error?: Error) => void): void {
    this.#abort = abort;
    connecting = this;
  }

  onResponseStarted(): void {
    this.#answering = true;
  }

  onHeaders(status: number, raw: Buffer[], _resume: () => void, statusText: string): boolean {
    this.#answering = true;
    if (status < 200) return true;
    this.status = status;
    this.statusText = statusText;
    this.headers = headersOf(raw);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.size += chunk.length;
    if (!this.events.accepts(this.size)) return false;
    this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    this.events.complete(this);
  }

  onError(error: Error): void {
    this.events.failed(this, error);
  }
}

interface AttemptEvents {
  /** False once the body has grown past the limit (the exchange has failed then). */
  accepts(size: number): boolean;
  complete(attempt: Attempt): void;
  failed(attempt: Attempt, error: Error): void;
}

// Node's rule for repeated response headers: these keep their first value, set-cookie gathers an array, the rest
// are joined with ', '.
const SINGLE_VALUED = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer',
  'retry-after', 'server', 'user-agent',
]);

function headersOf(raw: Buffer[]): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    const seen = headers[name];
    if (seen === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(seen)) seen.push(value);
    else if (!SINGLE_VALUED.has(name)) headers[name] = `${seen}, ${value}`;
  }
  return headers;
}


function exchange(config: RenewableRequestConfig, target: Target, dispatchers: UpstreamDispatchers): Promise<AxiosResponse> {
  return new Promise((resolve, reject) => {
    const method = (config.method ?? 'get').toUpperCase() as Dispatcher.HttpMethod;
    const headers = outgoingHeaders(config);
    const limit = config.maxContentLength ?? -1;
    const signal = config.signal as AbortSignal | undefined;
    let current: Attempt | undefined;
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;

    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(deadline);
      return true;
    };
    /** Settles with `error`; an attempt still running (a deadline, a cancel, a body too large) is aborted. */
    const fail = (error: AxiosError, attemptDone = false): void => {
      if (!finish()) return;
      reject(error);
      if (attemptDone) return;
      try {
        current?.abort(error);
      } catch {
        // Already over inside undici: nothing left to abort.
      }
    };
    const onAbort = (): void => fail(new AxiosError('canceled', AxiosError.ERR_CANCELED, config));

    const events = (mayRetry: boolean): AttemptEvents => ({
      accepts: (size) => {
        if (limit < 0 || size <= limit) return true;
        fail(new AxiosError(`maxContentLength size of ${limit} exceeded`, AxiosError.ERR_BAD_RESPONSE, config));
        return false;
      },
      complete: (attempt) => {
        if (settled) return;
        let response: AxiosResponse;
        try {
          response = answer(attempt);
        } catch (error) {
          fail(error instanceof AxiosError ? error : AxiosError.from(error as Error, (error as { code?: string }).code ?? AxiosError.ERR_BAD_RESPONSE, config), true);
          return;
        }
        if (!finish()) return;
        const validate = config.validateStatus;
        if (!validate || validate(response.status)) {
          resolve(response);
        } else {
          const code = response.status < 500 ? AxiosError.ERR_BAD_REQUEST : AxiosError.ERR_BAD_RESPONSE;
          reject(new AxiosError(`Request failed with status code ${response.status}`, code, config, undefined, response));
        }
      },
      failed: (attempt, error) => {
        if (settled) return;
        const code = (error as { code?: string }).code ?? '';
        if (mayRetry && !dispatchers.released && attempt.failedUnanswered && STALE_CONNECTION_ERRORS.has(code)) {
          retry();
          return;
        }
        fail(AxiosError.from(error, code || AxiosError.ERR_BAD_RESPONSE, config), true);
      },
    });

    /**
     * One attempt. On a pooled connection, a failure before any byte of a response came back means the upstream
     * had closed the connection while it sat idle: the request is sent once more, on a new connection. Once a byte
     * has come back, or on a new connection, a failure is final: the upstream may have seen it.
     */
    const send = (dispatcher: Agent, mayRetry: boolean, body: string | undefined): void => {
      const attempt = new Attempt(events(mayRetry));
      current = attempt;
      dispatcher.dispatch({ origin: target.origin, path: target.path, method, headers, body: body ?? null }, attempt);
    };

    /** Once, on a new connection; with a body made anew where the request carries one-time credentials. */
    const retry = (): void => {
      const { renewBody } = config;
      if (renewBody === undefined) {
        send(dispatchers.fresh, false, bodyOf(config.data));
        return;
      }
      renewBody().then(
        (data) => {
          if (!settled) send(dispatchers.fresh, false, data);
        },
        (error: unknown) => fail(AxiosError.from(error as Error, 'ERR_RENEW', config)),
      );
    };

    const answer = (attempt: Attempt): AxiosResponse => {
      let bytes: Buffer = Buffer.concat(attempt.chunks, attempt.size);
      const { headers: received } = attempt;
      const decode = config.decompress === false ? undefined : DECODERS[String(received['content-encoding']).toLowerCase()];
      if (decode !== undefined) {
        try {
          bytes = decode(bytes, limit < 0 ? {} : { maxOutputLength: limit });
        } catch (error) {
          if (error instanceof RangeError) throw new AxiosError(`maxContentLength size of ${limit} exceeded`, AxiosError.ERR_BAD_RESPONSE, config);
          throw error;
        }
        delete received['content-encoding'];
        delete received['content-length'];
      }
      return {
        data: config.responseType === 'arraybuffer' ? bytes : bytes.toString('utf8'),
        status: attempt.status,
        statusText: attempt.statusText,
        headers: received,
        config,
        request: undefined,
      };
    };

    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    // Here `timeout` bounds the whole exchange, body included, retry included, not only a silent socket.
    if (config.timeout) {
      deadline = setTimeout(() => fail(new AxiosError(`timeout of ${config.timeout}ms exceeded`, AxiosError.ECONNABORTED, config)), config.timeout);
    }
    send(dispatchers.pooled, true, bodyOf(config.data));
  });
}

function bodyOf(data: unknown): string | undefined {
  if (data === undefined || data === null) return undefined;
  if (typeof data === 'string') return data;
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (data instanceof URLSearchParams) return data.toString();
  return JSON.stringify(data);
}

/** Flattened once per header set: the default client sends one of a few sets it built once. */
const flattened = new WeakMap<object, Record<string, string>>();

function outgoingHeaders(config: InternalAxiosRequestConfig): Record<string, string> {
  let flat = flattened.get(config.headers);
  if (flat === undefined) {
    flat = {};
    for (const [name, value] of Object.entries(config.headers.toJSON())) {
      if (typeof value === 'string' || typeof value === 'number') flat[name] = String(value);
      else if (Array.isArray(value)) flat[name] = value.map(String).join(', ');
    }
    flattened.set(config.headers, flat);
  }
  return flat;
}
