import { type HookCall, hookFor } from './hooks.js';
import type { RequestRecord } from './record.js';
import type { ReuseSighting } from './rotation/guard.js';
import type { EndpointName, NinjaAuthEvent, NinjaAuthHooks, ReuseDetectedEvent, TokenSet } from './types.js';
import type { UpstreamOutcome } from './upstream.js';

/** What the router knows of one request by the time the upstream has answered. */
export interface Exchange {
  readonly endpoint: EndpointName;
  readonly requestId: string;
  readonly at: Date;
  /** `performance.now()` when the request reached the router. */
  readonly startedAt: number;
  readonly grantType?: string;
  readonly username?: string;
  /** The refresh token the caller presented, on a refresh_token grant. */
  readonly presentedRefreshToken?: string;
  /** The token the caller asked to revoke. */
  readonly revokedToken?: string;
  readonly tokenTypeHint?: string;
}

/** The hooks to run for a request that reached the upstream or the guard, each with its frozen event. */
export function hookCallsFor(hooks: Readonly<NinjaAuthHooks>, record: RequestRecord): HookCall[] {
  const { exchange, upstream, reuse } = record;
  if (exchange === undefined || upstream === undefined) return [];
  const calls: HookCall[] = [];
  const hook = hookFor(hooks, eventTypeOf(exchange, upstream));
  if (hook !== undefined) calls.push([hook, eventFor(exchange, upstream, record.durationMs, record.source === 'coalesced' || record.source === 'store')]);
  const reuseHook = hookFor(hooks, 'reuse_detected');
  if (reuse !== undefined && reuseHook !== undefined) calls.push([reuseHook, reuseEventFor(exchange, record.status, record.durationMs, reuse)]);
  return calls;
}

/** Which event an upstream outcome means; cheap, so the event is only built when a hook wants it. */
export function eventTypeOf(exchange: Exchange, outcome: UpstreamOutcome): NinjaAuthEvent['type'] {
  if (outcome.kind === 'failed' || outcome.status < 200 || outcome.status > 299) return 'upstream_error';
  if (exchange.endpoint === 'revoke_token') return 'revoke';
  return exchange.presentedRefreshToken === undefined ? 'token_issued' : 'rotation';
}

/** The event an upstream outcome means, deep-frozen; the caller's bytes are never part of it. */
export function eventFor(exchange: Exchange, outcome: UpstreamOutcome, durationMs: number, replayed: boolean): NinjaAuthEvent {
  const { endpoint, requestId } = exchange;
  const at = readOnlyDate(exchange.at);
  if (outcome.kind === 'failed') {
    const { refusal } = outcome;
    return deepFreeze({ type: 'upstream_error', endpoint, requestId, status: refusal.status, durationMs, at, ...grantTypeOf(exchange), error: refusal.error, errorDescription: refusal.description });
  }
  const status = outcome.status;
  const body = outcome.json;
  if (status < 200 || status > 299) {
    return deepFreeze({ type: 'upstream_error', endpoint, requestId, status, durationMs, at, ...grantTypeOf(exchange), ...oauthError(body), ...(body === undefined ? {} : { body }) });
  }
  if (endpoint === 'revoke_token') {
    const hint = exchange.tokenTypeHint === undefined ? {} : { tokenTypeHint: exchange.tokenTypeHint };
    return deepFreeze({ type: 'revoke', endpoint, requestId, status, durationMs, at, token: exchange.revokedToken ?? '', ...hint });
  }
  const tokens = tokenSetOf(body);
  const previousRefreshToken = exchange.presentedRefreshToken;
  if (previousRefreshToken !== undefined) {
    const rotated = tokens.refreshToken !== undefined && tokens.refreshToken !== previousRefreshToken;
    return deepFreeze({ type: 'rotation', endpoint, requestId, status, durationMs, at, previousRefreshToken, rotated, replayed, tokens, body });
  }
  const username = exchange.username === undefined ? {} : { username: exchange.username };
  return deepFreeze({ type: 'token_issued', endpoint, requestId, status, durationMs, at, grantType: exchange.grantType ?? '', ...username, tokens, body });
}

/** A rotated-away refresh token came back: reported beside the request's own event. */
export function reuseEventFor(exchange: Exchange, status: number, durationMs: number, reuse: ReuseSighting): ReuseDetectedEvent {
  return deepFreeze({
    type: 'reuse_detected',
    endpoint: exchange.endpoint,
    requestId: exchange.requestId,
    status,
    durationMs,
    at: readOnlyDate(exchange.at),
    refreshTokenFingerprint: reuse.fingerprint,
    rotatedAt: readOnlyDate(reuse.rotatedAt),
    sinceRotationMs: exchange.at.getTime() - reuse.rotatedAt.getTime(),
    successorPresented: reuse.successorPresented,
  });
}

/** The refresh token a 2xx answer handed out in place of `presented`, or `undefined` when it did not rotate it. */
export function rotatedTo(outcome: UpstreamOutcome, presented: string): string | undefined {
  if (outcome.kind !== 'answered' || outcome.status < 200 || outcome.status > 299) return undefined;
  const successor = tokenSetOf(outcome.json).refreshToken;
  return successor !== undefined && successor !== presented ? successor : undefined;
}

export function tokenSetOf(body: unknown): TokenSet {
  if (typeof body !== 'object' || body === null) return {};
  const fields = body as Record<string, unknown>;
  const tokens: TokenSet = {};
  const text = (name: string): string | undefined => (typeof fields[name] === 'string' ? (fields[name] as string) : undefined);
  const accessToken = text('access_token');
  const refreshToken = text('refresh_token');
  const idToken = text('id_token');
  const tokenType = text('token_type');
  const scope = text('scope');
  const expiresIn = Number(fields['expires_in']);
  if (accessToken !== undefined) tokens.accessToken = accessToken;
  if (refreshToken !== undefined) tokens.refreshToken = refreshToken;
  if (idToken !== undefined) tokens.idToken = idToken;
  if (tokenType !== undefined) tokens.tokenType = tokenType;
  if (fields['expires_in'] !== undefined && fields['expires_in'] !== '' && Number.isFinite(expiresIn)) tokens.expiresIn = expiresIn;
  if (scope !== undefined) tokens.scope = scope;
  return tokens;
}

function grantTypeOf(exchange: Exchange): { grantType?: string } {
  return exchange.grantType === undefined ? {} : { grantType: exchange.grantType };
}

function oauthError(body: unknown): { error?: string; errorDescription?: string } {
  if (typeof body !== 'object' || body === null) return {};
  const { error, error_description: description } = body as Record<string, unknown>;
  return {
    ...(typeof error === 'string' ? { error } : {}),
    ...(typeof description === 'string' ? { errorDescription: description } : {}),
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** A `Date` whose setters throw: freezing an object does not freeze a date's time, and an event must not change. */
class ReadOnlyDate extends Date {}
for (const name of Object.getOwnPropertyNames(Date.prototype)) {
  if (!name.startsWith('set')) continue;
  Object.defineProperty(ReadOnlyDate.prototype, name, {
    value() {
      throw new TypeError(`ninja-auth: event dates are read-only (${name})`);
    },
  });
}

function readOnlyDate(date: Date): Date {
  return new ReadOnlyDate(date.getTime());
}
