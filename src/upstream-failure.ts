import { Refusal } from './errors.js';

/** The upstream did not answer HTTP in time: the router answers 502 or 504 itself. */
export interface UpstreamFailure {
  readonly kind: 'failed';
  readonly refusal: Refusal;
  /** A short code for the log, e.g. `ECONNREFUSED` or `timeout`; never a URL or a message. */
  readonly cause: string;
}

/** The router's own answer when the upstream did not answer: the caller never sees why. */
export function failure(status: 502 | 504, cause: string): UpstreamFailure {
  const refusal = status === 504
    ? new Refusal(504, 'upstream_timeout', 'the authorization server did not answer in time')
    : new Refusal(502, 'upstream_unavailable', 'the authorization server could not be reached');
  return { kind: 'failed', refusal, cause };
}

const TIMEOUT_CODES = new Set(['ECONNABORTED', 'ETIMEDOUT']);

/**
 * What a transport error means for the caller: a timeout is a 504, anything else (refused, reset, not HTTP, too
 * large) a 502. Only the error's `code` is kept, for the log; its message may hold a URL.
 */
export function failureOf(error: unknown): UpstreamFailure {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return failure(502, 'unknown');
  return TIMEOUT_CODES.has(code) ? failure(504, 'timeout') : failure(502, code);
}
