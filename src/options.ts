import type { AxiosInstance } from 'axios';
import { type AssertionKey, ASSERTION_KEY_ENV, readAssertionKey, secretAssertionKey } from './client-assertion.js';
import { MTLS_METHODS } from './client-auth.js';
import { sha256Bytes } from './digest.js';
import { NinjaAuthConfigError } from './errors.js';
import { MemoryStore } from './stores/memory-store.js';
import { envPem, TLS_ENV, type TlsMaterial, readTlsOptions } from './tls-material.js';
import type { ClientAuthMethod, NinjaAuthHooks, NinjaAuthOptions, NinjaAuthStore, TelemetryMeterProvider, TelemetryOptions, TelemetryTracerProvider, UpstreamOptions } from './types.js';

const DEFAULT_GRANT_TYPES = ['password', 'authorization_code', 'client_credentials', 'refresh_token'];

const ENV = {
  tokenUrl: 'NINJA_AUTH_TOKEN_URL',
  revokeUrl: 'NINJA_AUTH_REVOKE_URL',
  issuer: 'NINJA_AUTH_ISSUER',
  clientId: 'NINJA_AUTH_CLIENT_ID',
  clientSecret: 'NINJA_AUTH_CLIENT_SECRET',
  authKey: 'NINJA_AUTH_KEY',
  clientAssertionKey: ASSERTION_KEY_ENV,
} as const;

/** Every key of `T`, each mapped to `true`: the compiler rejects a list that misses one, or names one too many. */
type KeysEnum<T> = { readonly [K in keyof Required<T>]: true };

const OPTION_KEYS: KeysEnum<NinjaAuthOptions> = {
  prefix: true, upstream: true, clientId: true, clientSecret: true, clientAuth: true, extraParams: true,
  grantTypes: true, authKey: true, allowUsernames: true, timeoutMs: true, maxBodyBytes: true, awaitHooks: true,
  hookTimeoutMs: true, hooks: true, httpClient: true, allowInsecureUpstream: true, coalesce: true,
  reuseGraceMs: true, reuseDetectionMs: true, store: true, storeTimeoutMs: true, clientAssertionKey: true,
  clientAssertionAlg: true, clientAssertionKid: true, tls: true, telemetry: true,
};
const UPSTREAM_KEYS: KeysEnum<UpstreamOptions> = { tokenUrl: true, revokeUrl: true, issuer: true };
const HOOK_KEYS: KeysEnum<NinjaAuthHooks> = {
  onTokenIssued: true, onRotation: true, onRevoke: true, onUpstreamError: true, onReuseDetected: true,
  onHookError: true, onStoreError: true,
};
const TELEMETRY_KEYS: KeysEnum<TelemetryOptions> = { meterProvider: true, tracerProvider: true };
const OPTION_NAMES = Object.keys(OPTION_KEYS);
const TELEMETRY_NAMES = Object.keys(TELEMETRY_KEYS);
const UPSTREAM_NAMES = Object.keys(UPSTREAM_KEYS);
const HOOK_NAMES = Object.keys(HOOK_KEYS);
const CLIENT_AUTH_METHOD_KEYS: { readonly [M in ClientAuthMethod]: true } = {
  client_secret_post: true, client_secret_basic: true, client_secret_jwt: true, private_key_jwt: true,
  tls_client_auth: true, self_signed_tls_client_auth: true, none: true,
};
const CLIENT_AUTH_METHODS = Object.keys(CLIENT_AUTH_METHOD_KEYS) as ClientAuthMethod[];
const RESERVED_PARAMS = ['client_id', 'client_secret', 'client_assertion', 'client_assertion_type', 'grant_type'];

export interface ClientCredentials {
  readonly id: string | undefined;
  readonly secret: string | undefined;
  /**
   * The `clientAuth` option, or without discovery its default. `undefined` only with discovery and no
   * `clientAuth` option: then the issuer's metadata decides among the configured methods.
   */
  readonly auth: ClientAuthMethod | undefined;
  /** Signs `private_key_jwt` assertions, when `clientAssertionKey` is set. */
  readonly assertionKey: AssertionKey | undefined;
  /** Signs `client_secret_jwt` assertions, when that is the `clientAuth` option. */
  readonly secretAssertionKey: AssertionKey | undefined;
  /** The connections carry a client certificate: `tls` is set, or the app's own `httpClient` is told to. */
  readonly certificate: boolean;
}

/** Where the upstream is: fixed endpoints, an issuer to discover them from, or both (fixed ones win). */
export interface UpstreamSettings {
  readonly tokenUrl: string | undefined;
  readonly revokeUrl: string | undefined;
  readonly issuer: string | undefined;
  readonly allowInsecure: boolean;
}

export interface RotationSettings {
  readonly coalesce: boolean;
  readonly reuseGraceMs: number;
  readonly reuseDetectionMs: number;
  readonly store: NinjaAuthStore;
  /** The store is the router's own default `MemoryStore`, not one the app passed in: `close()` shuts it down. */
  readonly ownStore: boolean;
  readonly storeTimeoutMs: number;
}

/** The options resolved once, when `ninjaAuth()` is called. */
export interface Configuration {
  readonly prefix: string;
  readonly upstream: UpstreamSettings;
  readonly client: ClientCredentials;
  readonly extraParams: ReadonlyArray<readonly [string, string]>;
  readonly grantTypes: ReadonlySet<string>;
  /** SHA-256 of the authKey, so the comparison is constant-time whatever the lengths. */
  readonly authKeyDigest: Buffer | undefined;
  readonly isUsernameAllowed: ((username: string) => boolean | Promise<boolean>) | undefined;
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  readonly awaitHooks: boolean;
  readonly hookTimeoutMs: number;
  readonly hooks: Readonly<NinjaAuthHooks>;
  readonly httpClient: AxiosInstance | undefined;
  /** The client certificate and CAs of the default client's https agent. */
  readonly tls: TlsMaterial | undefined;
  readonly rotation: RotationSettings;
  /** Values that must never appear in a log line. */
  readonly secrets: readonly string[];
  readonly telemetry: TelemetrySettings;
}

/** `false`: no telemetry at all. Otherwise the providers given; `undefined` ones are the global ones. */
export type TelemetrySettings = false | {
  readonly meterProvider: TelemetryMeterProvider | undefined;
  readonly tracerProvider: TelemetryTracerProvider | undefined;
};

type Env = Readonly<Record<string, string | undefined>>;

export function parseOptions(options: NinjaAuthOptions = {}, env: Env = process.env): Configuration {
  if (!isPlainObject(options)) throw new NinjaAuthConfigError('options', 'must be an object, e.g. ninjaAuth({ upstream: { tokenUrl } })');
  rejectUnknownKeys(options, OPTION_NAMES, '');
  const upstream = options.upstream ?? {};
  if (!isPlainObject(upstream)) throw new NinjaAuthConfigError('upstream', 'must be an object, e.g. { tokenUrl: "https://idp.example.com/oauth/token" }');
  rejectUnknownKeys(upstream, UPSTREAM_NAMES, 'upstream.');
  const hooks = options.hooks ?? {};
  if (!isPlainObject(hooks)) throw new NinjaAuthConfigError('hooks', 'must be an object of functions, e.g. { onRotation(event) {} }');
  rejectUnknownKeys(hooks, HOOK_NAMES, 'hooks.');
  for (const [name, hook] of Object.entries(hooks)) {
    if (hook !== undefined && typeof hook !== 'function') throw new NinjaAuthConfigError(`hooks.${name}`, 'must be a function');
  }

  const allowInsecure = optionalBoolean(options.allowInsecureUpstream, 'allowInsecureUpstream') ?? false;
  const issuerValue = fromEnv(upstream.issuer, 'upstream.issuer', env, ENV.issuer);
  const issuer = issuerValue === undefined ? undefined : checkIssuer(issuerValue, allowInsecure);
  const tokenUrlValue = fromEnv(upstream.tokenUrl, 'upstream.tokenUrl', env, ENV.tokenUrl);
  if (tokenUrlValue === undefined && issuer === undefined) {
    throw new NinjaAuthConfigError(
      'upstream.tokenUrl',
      'is required unless upstream.issuer (env NINJA_AUTH_ISSUER) is set, e.g. ninjaAuth({ upstream: { tokenUrl: "https://idp.example.com/oauth/token" } })',
      ENV.tokenUrl,
    );
  }
  const tokenUrl = tokenUrlValue === undefined ? undefined : checkUpstreamUrl(tokenUrlValue, 'upstream.tokenUrl', ENV.tokenUrl, allowInsecure);
  const revokeUrlValue = fromEnv(upstream.revokeUrl, 'upstream.revokeUrl', env, ENV.revokeUrl);
  const revokeUrl = revokeUrlValue === undefined ? undefined : checkUpstreamUrl(revokeUrlValue, 'upstream.revokeUrl', ENV.revokeUrl, allowInsecure);

  const httpClient = parseHttpClient(options.httpClient);
  const tls = readTlsOptions(options.tls, env);
  if (tls !== undefined && httpClient !== undefined) {
    // Named by where it came from: the option, or the environment variables that set it.
    const problem = 'applies to the default client only: with httpClient, put the certificate on its https agent';
    throw options.tls === undefined ? new NinjaAuthConfigError('tls', problem, `${TLS_ENV.cert} / ${TLS_ENV.key}`) : new NinjaAuthConfigError('tls', problem);
  }
  const client = parseClient(options, env, issuer !== undefined, { tls: tls !== undefined, ownClient: httpClient !== undefined });
  const authKey = fromEnv(options.authKey, 'authKey', env, ENV.authKey);

  return {
    prefix: parsePrefix(options.prefix),
    upstream: { tokenUrl, revokeUrl, issuer, allowInsecure },
    client,
    extraParams: parseExtraParams(options.extraParams),
    grantTypes: new Set(parseGrantTypes(options.grantTypes)),
    authKeyDigest: authKey === undefined ? undefined : sha256Bytes(authKey),
    isUsernameAllowed: parseAllowUsernames(options.allowUsernames),
    timeoutMs: positiveInteger(options.timeoutMs, 'timeoutMs') ?? 10_000,
    maxBodyBytes: positiveInteger(options.maxBodyBytes, 'maxBodyBytes') ?? 16_384,
    awaitHooks: optionalBoolean(options.awaitHooks, 'awaitHooks') ?? false,
    hookTimeoutMs: positiveInteger(options.hookTimeoutMs, 'hookTimeoutMs') ?? 5_000,
    hooks: { ...hooks },
    httpClient,
    tls,
    rotation: parseRotation(options),
    secrets: [client.secret, authKey].filter((s): s is string => s !== undefined),
    telemetry: parseTelemetry(options.telemetry),
  };
}

function parseTelemetry(value: unknown): TelemetrySettings {
  if (value === false) return false;
  if (value === undefined) return { meterProvider: undefined, tracerProvider: undefined };
  if (!isPlainObject(value)) {
    throw new NinjaAuthConfigError('telemetry', 'must be false or an object, e.g. { meterProvider, tracerProvider } (leave it out to use the global OpenTelemetry providers)');
  }
  rejectUnknownKeys(value, TELEMETRY_NAMES, 'telemetry.');
  const provider = (name: string, method: string): unknown => {
    const found = value[name];
    if (found !== undefined && typeof (found as Record<string, unknown> | null)?.[method] !== 'function') {
      throw new NinjaAuthConfigError(`telemetry.${name}`, `must be an OpenTelemetry ${name === 'meterProvider' ? 'MeterProvider' : 'TracerProvider'} (an object with ${method}())`);
    }
    return found;
  };
  return {
    meterProvider: provider('meterProvider', 'getMeter') as TelemetryMeterProvider | undefined,
    tracerProvider: provider('tracerProvider', 'getTracer') as TelemetryTracerProvider | undefined,
  };
}

function parseRotation(options: NinjaAuthOptions): RotationSettings {
  const store = parseStore(options.store);
  return {
    coalesce: optionalBoolean(options.coalesce, 'coalesce') ?? true,
    reuseGraceMs: nonNegativeInteger(options.reuseGraceMs, 'reuseGraceMs') ?? 10_000,
    reuseDetectionMs: nonNegativeInteger(options.reuseDetectionMs, 'reuseDetectionMs') ?? 86_400_000,
    store: store ?? new MemoryStore(),
    ownStore: store === undefined,
    storeTimeoutMs: positiveInteger(options.storeTimeoutMs, 'storeTimeoutMs') ?? 500,
  };
}

/** The store's required methods: every key of NinjaAuthStore whose value is a function and not optional. */
type RequiredMethods<T> = { [K in keyof T]-?: undefined extends T[K] ? never : T[K] extends (...args: never[]) => unknown ? K : never }[keyof T];
const STORE_METHOD_KEYS: { readonly [M in RequiredMethods<NinjaAuthStore>]: true } = { get: true, set: true, setIfAbsent: true, deleteIfEquals: true };
const STORE_METHODS = Object.keys(STORE_METHOD_KEYS) as Array<RequiredMethods<NinjaAuthStore>>;

function parseStore(value: unknown): NinjaAuthStore | undefined {
  if (value === undefined) return undefined;
  const missing = STORE_METHODS.filter((method) => typeof (value as Record<string, unknown> | null)?.[method] !== 'function');
  if (typeof value !== 'object' || value === null || missing.length > 0) {
    throw new NinjaAuthConfigError('store', `must be a NinjaAuthStore such as new MemoryStore() or new RedisStore({ client }) (missing: ${missing.join(', ')})`);
  }
  return value as NinjaAuthStore;
}

function parseClient(options: NinjaAuthOptions, env: Env, discovered: boolean, transport: { tls: boolean; ownClient: boolean }): ClientCredentials {
  const id = fromEnv(options.clientId, 'clientId', env, ENV.clientId);
  const secret = fromEnv(options.clientSecret, 'clientSecret', env, ENV.clientSecret);
  const explicit = options.clientAuth;
  if (explicit !== undefined && !CLIENT_AUTH_METHODS.includes(explicit)) {
    throw new NinjaAuthConfigError('clientAuth', `must be one of ${CLIENT_AUTH_METHODS.map((m) => `"${m}"`).join(', ')}`);
  }
  const keyValue = options.clientAssertionKey ?? envPem(env, ENV.clientAssertionKey);
  const alg = optionalString(options.clientAssertionAlg, 'clientAssertionAlg');
  const kid = optionalString(options.clientAssertionKid, 'clientAssertionKid');
  const assertionKey = keyValue === undefined ? undefined : readAssertionKey(keyValue, explicit === 'client_secret_jwt' ? undefined : alg, kid);
  const certificate = transport.tls || (transport.ownClient && explicit !== undefined && MTLS_METHODS.has(explicit));

  if (explicit === 'client_secret_jwt' && secret === undefined) {
    throw new NinjaAuthConfigError('clientSecret', 'is required with clientAuth "client_secret_jwt": the assertion is signed with it', ENV.clientSecret);
  }
  const secretAssertion = explicit === 'client_secret_jwt' ? secretAssertionKey(secret!, alg, kid) : undefined;
  if (assertionKey === undefined && secretAssertion === undefined) {
    if (alg !== undefined) throw new NinjaAuthConfigError('clientAssertionAlg', 'is set, but no assertion is signed: set clientAssertionKey, or clientAuth "client_secret_jwt"');
    if (kid !== undefined) throw new NinjaAuthConfigError('clientAssertionKid', 'is set, but no assertion is signed: set clientAssertionKey, or clientAuth "client_secret_jwt"');
  }

  const credentials = [
    [secret, 'clientSecret', ENV.clientSecret],
    [assertionKey, 'clientAssertionKey', ENV.clientAssertionKey],
    [transport.tls || undefined, 'tls', TLS_ENV.cert],
  ] as const;
  for (const [value, option, envVar] of credentials) {
    if (value !== undefined && id === undefined) throw new NinjaAuthConfigError('clientId', `is required when ${option} (env ${envVar}) is set`, ENV.clientId);
  }
  if (explicit === 'none') {
    const unused = credentials.find(([value]) => value !== undefined);
    if (unused !== undefined) throw new NinjaAuthConfigError('clientAuth', `is "none" but ${unused[1]} (env ${unused[2]}) is set: choose the method that uses it, or drop it`);
  }
  requireCredentials(explicit, { id, secret, assertionKey, certificate });

  const auth = explicit ?? (discovered ? undefined : defaultMethod(assertionKey !== undefined, certificate, secret !== undefined));
  return { id, secret, auth, assertionKey, secretAssertionKey: secretAssertion, certificate };
}

/** Without discovery and without `clientAuth`: the strongest credential configured. */
function defaultMethod(hasKey: boolean, hasCertificate: boolean, hasSecret: boolean): ClientAuthMethod {
  if (hasKey) return 'private_key_jwt';
  if (hasCertificate) return 'tls_client_auth';
  return hasSecret ? 'client_secret_post' : 'none';
}

/** An explicit method must have what it authenticates with. */
function requireCredentials(
  method: ClientAuthMethod | undefined,
  has: { id: string | undefined; secret: string | undefined; assertionKey: AssertionKey | undefined; certificate: boolean },
): void {
  if (method === undefined || method === 'none') return;
  if (has.id === undefined) throw new NinjaAuthConfigError('clientId', `is required with clientAuth "${method}"`, ENV.clientId);
  if ((method === 'client_secret_post' || method === 'client_secret_basic') && has.secret === undefined) {
    throw new NinjaAuthConfigError('clientSecret', `is required with clientAuth "${method}"`, ENV.clientSecret);
  }
  if (method === 'private_key_jwt' && has.assertionKey === undefined) {
    throw new NinjaAuthConfigError('clientAssertionKey', 'is required with clientAuth "private_key_jwt": the private key whose public key the provider has', ENV.clientAssertionKey);
  }
  if (MTLS_METHODS.has(method) && !has.certificate) {
    throw new NinjaAuthConfigError('tls', `is required with clientAuth "${method}": { cert, key } of the client certificate`, TLS_ENV.cert);
  }
}

function optionalString(value: unknown, option: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new NinjaAuthConfigError(option, 'must be a non-empty string');
  return value;
}

/** An explicit option wins over its environment variable; an empty environment variable counts as unset. */
function fromEnv(value: unknown, option: string, env: Env, envVar: string): string | undefined {
  if (value !== undefined) {
    if (typeof value !== 'string' || value === '') throw new NinjaAuthConfigError(option, 'must be a non-empty string', envVar);
    return value;
  }
  const fromEnvironment = env[envVar];
  return fromEnvironment === undefined || fromEnvironment === '' ? undefined : fromEnvironment;
}

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOST.test(hostname);
}

/** What is wrong with an upstream URL, or `undefined` when it is fine; also used for URLs learned by discovery. */
export function upstreamUrlProblem(value: string, allowInsecure: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URL, e.g. "https://idp.example.com/oauth/token"';
  }
  const insecureAllowed = url.protocol === 'http:' && (allowInsecure || isLoopbackHost(url.hostname));
  if (url.protocol !== 'https:' && !insecureAllowed) {
    return 'must use https: (http: only on localhost, 127.0.0.0/8 or [::1], unless allowInsecureUpstream: true)';
  }
  if (url.username !== '' || url.password !== '') return 'must not carry credentials: use clientId and clientSecret';
  return undefined;
}

function checkUpstreamUrl(value: string, option: string, envVar: string, allowInsecure: boolean): string {
  const problem = upstreamUrlProblem(value, allowInsecure);
  if (problem !== undefined) throw new NinjaAuthConfigError(option, problem, envVar);
  return new URL(value).href;
}

/** The issuer is kept as written: its metadata must name the same issuer. */
function checkIssuer(value: string, allowInsecure: boolean): string {
  checkUpstreamUrl(value, 'upstream.issuer', ENV.issuer, allowInsecure);
  if (/[?#]/.test(value)) throw new NinjaAuthConfigError('upstream.issuer', 'must have no query or fragment', ENV.issuer);
  return value;
}

function parsePrefix(value: unknown): string {
  if (value === undefined) return '/auth';
  if (typeof value !== 'string' || (value !== '' && !value.startsWith('/')) || /[\s?#]/.test(value)) {
    throw new NinjaAuthConfigError('prefix', 'must be a path that starts with "/", e.g. "/auth"');
  }
  return value.replace(/\/+$/, '');
}

function parseExtraParams(value: unknown): Array<[string, string]> {
  if (value === undefined) return [];
  if (!isPlainObject(value)) throw new NinjaAuthConfigError('extraParams', 'must be an object of strings, e.g. { audience: "https://api.example.com" }');
  return Object.entries(value).map(([name, param]) => {
    if (typeof param !== 'string') throw new NinjaAuthConfigError(`extraParams.${name}`, 'must be a string');
    if (RESERVED_PARAMS.includes(name)) throw new NinjaAuthConfigError(`extraParams.${name}`, 'is set by the router itself: use clientId, clientSecret or grantTypes');
    return [name, param];
  });
}

function parseGrantTypes(value: unknown): string[] {
  if (value === undefined) return DEFAULT_GRANT_TYPES;
  if (!Array.isArray(value) || value.length === 0 || !value.every((g) => typeof g === 'string' && g !== '')) {
    throw new NinjaAuthConfigError('grantTypes', 'must be a non-empty array of grant type names, e.g. ["password", "refresh_token"]');
  }
  return value;
}

function parseAllowUsernames(value: unknown): Configuration['isUsernameAllowed'] {
  if (value === undefined) return undefined;
  if (typeof value === 'function') return value as (username: string) => boolean | Promise<boolean>;
  if (Array.isArray(value) && value.every((u) => typeof u === 'string')) {
    const allowed = new Set(value);
    return (username) => allowed.has(username);
  }
  throw new NinjaAuthConfigError('allowUsernames', 'must be an array of usernames or a function (username) => boolean');
}

function parseHttpClient(value: unknown): AxiosInstance | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function' || typeof (value as { request?: unknown }).request !== 'function') {
    throw new NinjaAuthConfigError('httpClient', 'must be an axios instance, e.g. axios.create({ proxy: false })');
  }
  return value as AxiosInstance;
}

function positiveInteger(value: unknown, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new NinjaAuthConfigError(option, 'must be a positive whole number');
  }
  return value;
}

function nonNegativeInteger(value: unknown, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new NinjaAuthConfigError(option, 'must be a whole number, 0 or more');
  }
  return value;
}

function optionalBoolean(value: unknown, option: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw new NinjaAuthConfigError(option, 'must be true or false');
}

function rejectUnknownKeys(object: object, known: readonly string[], path: string): void {
  for (const key of Object.keys(object)) {
    if (known.includes(key)) continue;
    const guess = closest(key, known);
    const hint = guess === undefined ? `known options: ${known.join(', ')}` : `did you mean "${path}${guess}"?`;
    throw new NinjaAuthConfigError(`${path}${key}`, `is not a ninja-auth option (a typo?): ${hint}`);
  }
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(Math.max(3, Math.ceil(word.length / 3)) + 1, word.length);
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

