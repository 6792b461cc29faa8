import type { Refusal } from './errors.js';
import type { Exchange } from './events.js';
import { rotatedTo } from './events.js';
import type { ReplySource, ReuseSighting } from './rotation/guard.js';
import type { EndpointName } from './types.js';
import type { UpstreamOutcome } from './upstream.js';

/** What a refresh came to, as `ninja_auth.refresh.outcomes` counts it. */
export type RefreshOutcome = 'rotated' | 'not_rotated' | 'coalesced' | 'replayed' | 'reuse_detected' | 'rejected' | 'failed';

/** What any request came to: a refresh's outcome, or one of the other requests' outcomes. */
export type RequestOutcome = RefreshOutcome | 'issued' | 'revoked' | 'refused';

/**
 * One request to the router, once it has been answered: the one thing the log line, the hooks and telemetry
 * read, so none of them has to work out again what happened.
 */
export interface RequestRecord {
  readonly endpoint: EndpointName;
  readonly requestId: string;
  /** From the request reaching the router to its answer being ready. */
  readonly durationMs: number;
  /** The status the caller got. */
  readonly status: number;
  readonly outcome: RequestOutcome;
  /** A refresh the router forwarded or answered from the guard; a refused request is not one. */
  readonly isRefresh: boolean;
  /** What the request asked for, once it got past the router's checks. */
  readonly exchange: Exchange | undefined;
  /** The upstream's answer or why there was none; `undefined` when the router refused the request. */
  readonly upstream: UpstreamOutcome | undefined;
  /** Where the request went upstream (or would have, when the guard answered it); `undefined` when refused. */
  readonly upstreamUrl: string | undefined;
  readonly refusal: Refusal | undefined;
  readonly source: ReplySource | undefined;
  readonly reuse: ReuseSighting | undefined;
  /** Every secret the request carried or got back, for redacting what code we do not control writes. */
  readonly secrets: () => readonly string[];
}

/** The outcome of a request that reached the upstream or the guard. */
export function outcomeOf(exchange: Exchange, upstream: UpstreamOutcome, source: ReplySource, reuse: ReuseSighting | undefined): RequestOutcome {
  const refresh = exchange.presentedRefreshToken;
  if (refresh !== undefined) {
    if (reuse !== undefined) return 'reuse_detected';
    if (source === 'coalesced') return 'coalesced';
    if (source === 'store') return 'replayed';
  }
  if (upstream.kind === 'failed') return 'failed';
  if (upstream.status < 200 || upstream.status > 299) return 'rejected';
  if (refresh !== undefined) return rotatedTo(upstream, refresh) === undefined ? 'not_rotated' : 'rotated';
  return exchange.endpoint === 'revoke_token' ? 'revoked' : 'issued';
}

/**
 * A request the router answered itself: its own 4xx, 501 (no revocation endpoint) or 503 is `refused`; a failed
 * discovery's 502 and a bug's 500 count as `failed`.
 */
export function refusalOutcome(refusal: Refusal): RequestOutcome {
  return refusal.status >= 500 && refusal.status !== 501 && refusal.status !== 503 ? 'failed' : 'refused';
}
