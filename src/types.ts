import type { JsonWebKey, KeyObject } from 'node:crypto';
import type { Request, Router } from 'express';
import type { AxiosInstance } from 'axios';

/** What `ninjaAuth()` returns: an Express router with a graceful `close()`. */
export interface NinjaAuthRouter extends Router {
  /**
   * For a graceful shutdown (`server.close()`, then `await router.close()`): resolves once every upstream exchange
   * in flight has finished, its reply is in the store and the hooks it started have settled (at most `timeoutMs` +
   * `hookTimeoutMs`), then releases the router's own connection pools and timers. Requests that arrive meanwhile
   * are served with `Connection: close`; afterwards they get 503 `temporarily_unavailable`. Calling it again
   * returns the same promise.
   */
  close(): Promise<void>;
}

/** How the router authenticates itself to the upstream token and revocation endpoints (see Client authentication). */
export type ClientAuthMethod =
  | 'client_secret_post'
  | 'client_secret_basic'
  | 'client_secret_jwt'
  | 'private_key_jwt'
  | 'tls_client_auth'
  | 'self_signed_tls_client_auth'
  | 'none';

/** A private key that signs `private_key_jwt` assertions: PEM (PKCS#8, PKCS#1 or SEC1), a private JWK, or a `KeyObject`. */
export type ClientAssertionKey = string | JsonWebKey | KeyObject;

/** PEM text, or its bytes. */
export type PemInput = string | Buffer;

/** The client certificate the default client presents on its https connections (RFC 8705 mutual TLS). */
export interface NinjaAuthTlsOptions {
  /** The client certificate chain, PEM. */
  cert: PemInput;
  /** Its private key, PEM. */
  key: PemInput;
  /** CAs to trust for the upstream's certificate, besides the system's. */
  ca?: PemInput | PemInput[] | undefined;
  /** Decrypts `key` when it is encrypted. */
  passphrase?: string | undefined;
}

/** The path the caller used, relative to `prefix`. */
export type EndpointName = 'token' | 'refresh_token' | 'revoke_token';

export interface UpstreamOptions {
  /** The upstream OAuth token endpoint. Defaults to env `NINJA_AUTH_TOKEN_URL`. */
  tokenUrl?: string | undefined;
  /** The upstream RFC 7009 revocation endpoint. Defaults to env `NINJA_AUTH_REVOKE_URL`; without it `revoke_token` answers 501. */
  revokeUrl?: string | undefined;
  /** OIDC / RFC 8414 discovery: the endpoints (and, without `clientAuth`, the method) come from the issuer's metadata. Defaults to env `NINJA_AUTH_ISSUER`. */
  issuer?: string | undefined;
}

/** Every field is optional; `undefined` means "use the default". */
export interface NinjaAuthOptions {
  /** Where the endpoints are mounted inside the router. Defaults to `'/auth'`. */
  prefix?: string | undefined;
  upstream?: UpstreamOptions | undefined;
  /** Client id sent upstream; replaces a client-sent `client_id`. Defaults to env `NINJA_AUTH_CLIENT_ID`. */
  clientId?: string | undefined;
  /** Kept server-side, never accepted from or shown to the caller. Defaults to env `NINJA_AUTH_CLIENT_SECRET`. */
  clientSecret?: string | undefined;
  /**
   * Defaults to `'private_key_jwt'` when `clientAssertionKey` is set, `'tls_client_auth'` when `tls` is set,
   * `'client_secret_post'` when a secret is set, else `'none'`; with `upstream.issuer`, to the strongest of
   * those that the metadata lists.
   */
  clientAuth?: ClientAuthMethod | undefined;
  /** Signs the `private_key_jwt` assertions. Defaults to env `NINJA_AUTH_CLIENT_ASSERTION_KEY` (PEM or JWK JSON). */
  clientAssertionKey?: ClientAssertionKey | undefined;
  /**
   * The assertion's JWS algorithm. Defaults to the key's: `RS256` (RSA; `PS256` on request), `ES256`/`ES384`/`ES512`
   * (EC, by curve), `EdDSA` (Ed25519); `HS256` under `client_secret_jwt`.
   */
  clientAssertionAlg?: string | undefined;
  /** The assertion's `kid` header. Defaults to the JWK's `kid`, if any. */
  clientAssertionKid?: string | undefined;
  /**
   * Client certificate and trusted CAs for the default client's https connections. Defaults to env
   * `NINJA_AUTH_TLS_CERT`, `NINJA_AUTH_TLS_KEY`, `NINJA_AUTH_TLS_CA` (PEM contents). Not with `httpClient`.
   */
  tls?: NinjaAuthTlsOptions | undefined;
  /** Added to every upstream token request (not revocation) when the caller did not send them. Defaults to `{}`. */
  extraParams?: Record<string, string> | undefined;
  /** Grant types accepted. Defaults to `['password', 'authorization_code', 'client_credentials', 'refresh_token']`. */
  grantTypes?: string[] | undefined;
  /** When set, `/token` requires `Authorization: Bearer <authKey>`. Defaults to env `NINJA_AUTH_KEY`. */
  authKey?: string | undefined;
  /** Password grant only: which usernames may log in. Defaults to all. */
  allowUsernames?: string[] | ((username: string) => boolean | Promise<boolean>) | undefined;
  /** Deadline for the whole upstream exchange, body included; past it the caller gets 504. Defaults to `10000` ms. */
  timeoutMs?: number | undefined;
  /** Request body limit; past it 413. Defaults to `16384` bytes. */
  maxBodyBytes?: number | undefined;
  /** Run hooks before the response is sent instead of after it is finished. Defaults to `false`. */
  awaitHooks?: boolean | undefined;
  /** With `awaitHooks`, the longest the response waits for the hooks. Defaults to `5000` ms. */
  hookTimeoutMs?: number | undefined;
  hooks?: NinjaAuthHooks | undefined;
  /** The axios instance used to call the upstream. Defaults to a keep-alive instance built once per router. */
  httpClient?: AxiosInstance | undefined;
  /** Allow `http:` upstream URLs on hosts other than loopback. Defaults to `false`. */
  allowInsecureUpstream?: boolean | undefined;
  /** Identical refresh requests in flight at the same time share one upstream request. Defaults to `true`. */
  coalesce?: boolean | undefined;
  /** After a 2xx rotation, the same request repeated within this window gets the same reply again. `0` turns replay off. Defaults to `10000` ms. */
  reuseGraceMs?: number | undefined;
  /** How long fingerprints of rotated-away refresh tokens are remembered for `onReuseDetected`. `0` turns detection off. Defaults to `86400000` ms (a day). */
  reuseDetectionMs?: number | undefined;
  /** Where rotation state lives. Defaults to a `new MemoryStore()` per router; use a `RedisStore` across processes. */
  store?: NinjaAuthStore | undefined;
  /** Bounds every batch of store operations; a refresh that reaches the upstream waits for one. Past it the store is bypassed. Defaults to `500` ms. */
  storeTimeoutMs?: number | undefined;
  /**
   * Where metrics and spans go: `false` records nothing and loads nothing. Defaults to the global providers of
   * `@opentelemetry/api` when it is installed, else off.
   */
  telemetry?: false | TelemetryOptions | undefined;
}

/**
 * An OpenTelemetry `MeterProvider`, such as the SDK's. Typed by shape, so these declarations need no
 * `@opentelemetry/api` where it is not installed.
 */
export interface TelemetryMeterProvider {
  getMeter(name: string, version?: string): object;
}

/** An OpenTelemetry `TracerProvider`, such as the SDK's `BasicTracerProvider` or `NodeTracerProvider`. */
export interface TelemetryTracerProvider {
  getTracer(name: string, version?: string): object;
}

export interface TelemetryOptions {
  /** Defaults to the global one (`metrics.getMeterProvider()`), followed if the app registers another later. */
  meterProvider?: TelemetryMeterProvider | undefined;
  /** Defaults to the global one (`trace.getTracerProvider()`). */
  tracerProvider?: TelemetryTracerProvider | undefined;
}

/** The tokens found in a 2xx upstream JSON body, under camel-case names. */
export interface TokenSet {
  accessToken?: string;
  refreshToken?: string;
  idToken?: string;
  tokenType?: string;
  expiresIn?: number;
  scope?: string;
}

/** The parsed upstream JSON body, when it was JSON. */
export type UpstreamJson = unknown;

interface BaseEvent {
  endpoint: EndpointName;
  /** Unique per request to the router; also in the debug log. */
  requestId: string;
  /** The status the caller received. */
  status: number;
  /** Time from the request reaching the router to the upstream reply. */
  durationMs: number;
  at: Date;
}

export interface TokenIssuedEvent extends BaseEvent {
  type: 'token_issued';
  grantType: string;
  /** The username of a password grant; never the password. */
  username?: string;
  tokens: TokenSet;
  body: UpstreamJson;
}

export interface RotationEvent extends BaseEvent {
  type: 'rotation';
  /** The refresh token the caller presented. */
  previousRefreshToken: string;
  /** True when the upstream returned a refresh token that differs from the one presented. */
  rotated: boolean;
  /** True when this caller got another request's reply — a coalesced one in flight, or one replayed from the store — rather than one fetched for it (rotation safety). */
  replayed: boolean;
  tokens: TokenSet;
  body: UpstreamJson;
}

export interface RevokeEvent extends BaseEvent {
  type: 'revoke';
  /** The token the caller asked to revoke. */
  token: string;
  tokenTypeHint?: string;
}

export interface UpstreamErrorEvent extends BaseEvent {
  type: 'upstream_error';
  /** Set on the `/token` endpoint. */
  grantType?: string;
  /** The OAuth `error` code: the upstream's, or `upstream_unavailable` / `upstream_timeout` when it did not answer. */
  error?: string;
  errorDescription?: string;
  /** The parsed upstream JSON body, when the upstream answered JSON. */
  body?: UpstreamJson;
}

export interface ReuseDetectedEvent extends BaseEvent {
  type: 'reuse_detected';
  refreshTokenFingerprint: string;
  rotatedAt: Date;
  sinceRotationMs: number;
  /**
   * Whether the token that replaced this one has been presented since. `false` most often means a client that
   * lost the reply and retried after the window; `true` means the old token is being used beside a live
   * successor: a stale copy in another client, or a stolen token.
   */
  successorPresented: boolean;
}

export type NinjaAuthEvent =
  | TokenIssuedEvent
  | RotationEvent
  | RevokeEvent
  | UpstreamErrorEvent
  | ReuseDetectedEvent;

type Hook<E> = (event: E, req: Request) => void | Promise<void>;

/** Observers. They see deep-frozen events and can never change what the caller gets. */
export interface NinjaAuthHooks {
  /** 2xx on `/token` for a grant other than `refresh_token`. */
  onTokenIssued?: Hook<TokenIssuedEvent>;
  /** 2xx on a `refresh_token` grant, from either endpoint. */
  onRotation?: Hook<RotationEvent>;
  /** 2xx on `/revoke_token`. */
  onRevoke?: Hook<RevokeEvent>;
  /** A non-2xx upstream answer, or 502 / 504 when it did not answer. */
  onUpstreamError?: Hook<UpstreamErrorEvent>;
  /** A rotated-away refresh token presented again (rotation safety). */
  onReuseDetected?: Hook<ReuseDetectedEvent>;
  /** A hook threw, rejected, or (with `awaitHooks`) outlived `hookTimeoutMs`. */
  onHookError?(error: unknown, event: NinjaAuthEvent): void;
  /** The shared store failed (rotation safety). */
  onStoreError?(error: unknown): void;
}

/** One operation of {@link NinjaAuthStore.batch}: the name of the store method it stands for, then that method's arguments. */
export type StoreBatchOperation =
  | readonly [method: 'get', key: string]
  | readonly [method: 'set', key: string, value: string, ttlMs: number]
  | readonly [method: 'setIfAbsentOrGet', key: string, value: string, ttlMs: number]
  | readonly [method: 'deleteIfEquals', key: string, value: string];

/**
 * Where in-flight refreshes, replayable replies and fingerprints of rotated-away tokens live. Keys are
 * fingerprints and values are opaque strings (encrypted where they hold a reply); a store never sees a token.
 * Every method may answer synchronously or with a promise.
 */
export interface NinjaAuthStore {
  /** The value under `key`, or `undefined` when there is none or it expired. */
  get(key: string): Promise<string | undefined> | string | undefined;
  /** Stores `value` under `key` for `ttlMs`, replacing what was there. */
  set(key: string, value: string, ttlMs: number): Promise<void> | void;
  /** Stores `value` only when `key` holds nothing; `true` when it did. The lock of a refresh. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> | boolean;
  /**
   * Optional: `setIfAbsent` that, when `key` is held, returns what it holds, in one atomic step: `true` when it
   * stored `value`, else the value already there. Lets an instance that waits on another's lock know whose answer
   * to wait for even when that lock is released a moment later. Without it the value is read just after a
   * refused `setIfAbsent`.
   */
  setIfAbsentOrGet?(key: string, value: string, ttlMs: number): Promise<true | string> | true | string;
  /**
   * Optional: the values under `keys`, in order (`undefined` where there is none), at once — for a network store,
   * one command instead of one per key. The guard only asks it for keys that share a hash tag (`{…}`).
   */
  getMany?(keys: readonly string[]): Promise<Array<string | undefined>> | Array<string | undefined>;
  /**
   * Optional: runs the operations in order as one atomic step — for a network store, one command and one round
   * trip — and answers, in order, what each method would have answered on its own (`undefined` for `set` and
   * `deleteIfEquals`). The guard prefers it to the single methods and to `getMany`, and only batches keys that
   * share a hash tag (`{…}`).
   */
  batch?(operations: readonly StoreBatchOperation[]): Promise<Array<string | true | undefined>> | Array<string | true | undefined>;
  /** Deletes `key` only while it still holds `value`: releases a lock without touching a later holder's. */
  deleteIfEquals(key: string, value: string): Promise<void> | void;
  /** Stops timers and the like; the router never calls it, the app does on shutdown. */
  shutdown?(): Promise<void> | void;
  /**
   * True for a store that lives in one process only, as `MemoryStore` does: concurrent refreshes are then
   * coalesced in memory, with no lock in the store.
   */
  readonly localOnly?: boolean;
}
