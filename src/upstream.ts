import { type AxiosAdapter, AxiosHeaders, type AxiosInstance, type AxiosRequestConfig, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { type RenewableRequestConfig, undiciAdapter, type UpstreamTls, upstreamDispatchers } from './undici-transport.js';
import type { Configuration } from './options.js';
import type { TlsMaterial } from './tls-material.js';
import type { EndpointName } from './types.js';
import { failure, failureOf, type UpstreamFailure } from './upstream-failure.js';

export type { UpstreamFailure } from './upstream-failure.js';

/** The largest upstream body the router will pass on; a token reply is a few kilobytes. */
export const MAX_UPSTREAM_BODY_BYTES = 1024 * 1024;

/** A request to the upstream: always a form POST, the client credentials already in place. */
export interface UpstreamCall {
  readonly url: string;
  readonly form: URLSearchParams;
  /** `Basic …` under client_secret_basic. */
  readonly authorization?: string;
  /**
   * The same request with its client authentication made anew (a new assertion): for the one retry on a new
   * connection, which must not send a `jti` twice. Absent where the credentials do not change per request.
   */
  readonly renew?: () => UpstreamCall | Promise<UpstreamCall>;
  /** The router endpoint whose request this is, for telemetry's `ninja_auth.endpoint`. */
  readonly endpoint?: EndpointName;
}

/** The upstream answered HTTP: everything the caller will get, exactly as received. */
export interface UpstreamAnswer {
  readonly kind: 'answered';
  readonly status: number;
  /** End-to-end headers only: hop-by-hop, `Set-Cookie` and `Content-Length` are already gone. */
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: Buffer;
  /**
   * The body as JSON, `undefined` when it is not JSON: parsed on first use and only once, however many of the
   * guard, the events and the log ask. Never written to, only frozen for the hooks.
   */
  readonly json: unknown;
}

/** An answer whose `json` is parsed from `body` when first asked for. */
export function answered(status: number, headers: Readonly<Record<string, string | string[]>>, body: Buffer): UpstreamAnswer {
  return new Answer(status, headers, body);
}

class Answer implements UpstreamAnswer {
  readonly kind = 'answered';
  #parsed: { readonly value: unknown } | undefined;

  constructor(
    readonly status: number,
    readonly headers: Readonly<Record<string, string | string[]>>,
    readonly body: Buffer,
  ) {}

  get json(): unknown {
    this.#parsed ??= { value: parseJsonBody(this.body) };
    return this.#parsed.value;
  }
}

function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export type UpstreamOutcome = UpstreamAnswer | UpstreamFailure;

export type Upstream = (call: UpstreamCall) => Promise<UpstreamOutcome>;

const keepBytes = <T>(data: T): T => data;

/** Settings every upstream request needs, whichever axios instance sends it. */
const REQUEST_DEFAULTS = {
  responseType: 'arraybuffer',
  transformRequest: [keepBytes],
  transformResponse: [keepBytes],
  validateStatus: () => true,
  maxRedirects: 0,
  maxContentLength: MAX_UPSTREAM_BODY_BYTES,
  decompress: true,
} satisfies AxiosRequestConfig;

const METADATA_HEADERS = { accept: 'application/json', 'accept-encoding': 'identity', 'user-agent': 'ninja-auth' };
const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded';
const REQUEST_HEADERS = { ...METADATA_HEADERS, 'content-type': FORM_CONTENT_TYPE };

/**
 * The default client: keep-alive agents and a lean adapter whose `timeout` covers the whole exchange. It is the
 * router's own — nobody can add interceptors or defaults to it — so its requests go straight to the adapter
 * with a config built once, skipping axios's per-request pipeline (config merge, header objects, interceptor
 * chain), which cost more than the adapter itself.
 */
function createDefaultTransport(timeoutMs: number, tls: TlsMaterial | undefined): { adapter: AxiosAdapter; base: Readonly<Partial<InternalAxiosRequestConfig>>; release: () => void } {
  const dispatchers = upstreamDispatchers(tlsConnectOptions(tls));
  return {
    adapter: undiciAdapter(dispatchers),
    base: { ...REQUEST_DEFAULTS, timeout: timeoutMs },
    release: dispatchers.destroy,
  };
}

const GET_HEADERS = AxiosHeaders.from(METADATA_HEADERS);
const POST_HEADERS = AxiosHeaders.from(REQUEST_HEADERS);

/** Header sets by `Authorization` value: under client_secret_basic there is one, built once. */
function postHeaders(): (authorization: string | undefined) => AxiosHeaders {
  const withAuthorization = new Map<string, AxiosHeaders>();
  return (authorization) => {
    if (authorization === undefined) return POST_HEADERS;
    let headers = withAuthorization.get(authorization);
    if (headers === undefined) {
      headers = AxiosHeaders.from({ ...REQUEST_HEADERS, authorization });
      if (withAuthorization.size < 8) withAuthorization.set(authorization, headers);
    }
    return headers;
  };
}

/** The router's one upstream client: token-endpoint POSTs and, for discovery, metadata GETs. */
export interface UpstreamClient {
  readonly send: Upstream;
  /** GETs a URL; the answer as received, or a failure when it did not come. */
  readonly get: (url: string) => Promise<UpstreamOutcome>;
  /** Closes the router's own pooled connections; a caller's `httpClient` is left as it is. */
  readonly release: () => void;
}

/** RFC 8705: the client certificate on every https connection, and the configured CAs trusted beside the system's. */
function tlsConnectOptions(tls: TlsMaterial | undefined): UpstreamTls {
  if (tls === undefined) return {};
  const { cert, key, passphrase, ca } = tls;
  return { cert, key, ...(passphrase === undefined ? {} : { passphrase }), ...(ca === undefined ? {} : { ca: [...ca] }) };
}

/** Builds the router's single upstream client. */
export function createUpstream(config: Configuration): UpstreamClient {
  if (config.httpClient !== undefined) {
    const exchange = withDeadline(config.httpClient, config.timeoutMs);
    return {
      send: (call) => exchange({ method: 'POST', url: call.url, data: call.form.toString(), headers: plainHeadersFor(call) }),
      get: (url) => exchange({ method: 'GET', url, headers: METADATA_HEADERS }),
      release: () => undefined,
    };
  }
  const { adapter, base, release } = createDefaultTransport(config.timeoutMs, config.tls);
  const headersFor = postHeaders();
  const direct = (request: InternalAxiosRequestConfig): Promise<UpstreamOutcome> => settle(() => adapter(request));
  return {
    send: (call) => {
      const request: RenewableRequestConfig = { ...base, method: 'post', url: call.url, data: call.form.toString(), headers: headersFor(call.authorization) };
      const { renew } = call;
      return direct(renew === undefined ? request : { ...request, renewBody: async () => (await renew()).form.toString() });
    },
    get: (url) => direct({ ...base, method: 'get', url, headers: GET_HEADERS }),
    release,
  };
}

/** A caller's instance gets every setting on each request, and the deadline through an abort signal. */
function withDeadline(client: AxiosInstance, timeoutMs: number): (request: AxiosRequestConfig) => Promise<UpstreamOutcome> {
  return async (request) => {
    const deadline = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      deadline.abort();
    }, timeoutMs);
    try {
      const outcome = await settle(() => client.request<unknown>({ ...REQUEST_DEFAULTS, ...request, signal: deadline.signal }));
      return timedOut && outcome.kind === 'failed' ? failure(504, 'timeout') : outcome;
    } finally {
      clearTimeout(timer);
    }
  };
}

const plainHeadersFor = (call: UpstreamCall): Record<string, string> =>
  call.authorization === undefined ? REQUEST_HEADERS : { ...REQUEST_HEADERS, authorization: call.authorization };

async function settle(exchange: () => Promise<AxiosResponse<unknown>>): Promise<UpstreamOutcome> {
  try {
    return toAnswer(await exchange());
  } catch (error) {
    return failureOf(error);
  }
}

function toAnswer(response: AxiosResponse<unknown>): UpstreamOutcome {
  const body = asBytes(response.data);
  if (body === undefined) return failure(502, 'httpClient did not return raw bytes');
  const raw = response.headers as Record<string, unknown> & { toJSON?: () => Record<string, unknown> };
  return answered(response.status, endToEndHeaders(raw.toJSON?.() ?? raw), body);
}

function asBytes(data: unknown): Buffer | undefined {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data === undefined || data === null || data === '') return Buffer.alloc(0);
  return undefined;
}

const NOT_FORWARDED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer',
  'trailers', 'transfer-encoding', 'upgrade', 'set-cookie', 'content-length',
]);

/** RFC 9110 §7.6.1: hop-by-hop headers, plus those the upstream's `Connection` header names. */
function endToEndHeaders(headers: Record<string, unknown>): Record<string, string | string[]> {
  const connection = headers['connection'];
  const named = typeof connection === 'string' ? connection.toLowerCase().split(',').map((h) => h.trim()) : [];
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (NOT_FORWARDED.has(lower) || named.includes(lower)) continue;
    if (typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
      kept[lower] = value as string | string[];
    } else if (typeof value === 'number') {
      kept[lower] = String(value);
    }
  }
  return kept;
}
