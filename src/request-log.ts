import { tokenSetOf } from './events.js';
import type { RequestRecord } from './record.js';
import { fingerprint } from './redact.js';

/** The debug line for one request that reached the upstream or the guard: no token in it but as a fingerprint. */
export function requestLine(record: RequestRecord): string {
  const { exchange, upstream: outcome, durationMs, reuse } = record;
  if (exchange === undefined || outcome === undefined) return `${record.endpoint} ${record.status}`;
  const parts: string[] = [exchange.endpoint];
  if (outcome.kind === 'failed') {
    parts.push(String(outcome.refusal.status), outcome.refusal.error, `(${outcome.cause})`);
  } else {
    parts.push(String(outcome.status));
  }
  parts.push(`${durationMs.toFixed(1)}ms`, `id=${exchange.requestId.slice(0, 8)}`);
  if (exchange.grantType !== undefined) parts.push(`grant=${exchange.grantType}`);
  if (exchange.presentedRefreshToken !== undefined) parts.push(`presented=${fingerprint(exchange.presentedRefreshToken)}`);
  if (record.source === 'coalesced' || record.source === 'store') parts.push('replayed');
  if (reuse !== undefined) parts.push(`reuse-detected rotated=${reuse.rotatedAt.toISOString()}`);
  if (exchange.revokedToken !== undefined) parts.push(`revoked=${fingerprint(exchange.revokedToken)}`);
  if (outcome.kind === 'answered') {
    const body = outcome.json;
    if (outcome.status < 200 || outcome.status > 299) {
      const error = (body as { error?: unknown } | undefined)?.error;
      if (typeof error === 'string' && /^[\w.-]{1,64}$/.test(error)) parts.splice(2, 0, error);
    } else {
      const tokens = tokenSetOf(body);
      if (tokens.accessToken !== undefined) parts.push(`access=${fingerprint(tokens.accessToken)}`);
      if (tokens.refreshToken !== undefined) parts.push(`refresh=${fingerprint(tokens.refreshToken)}`);
      if (tokens.idToken !== undefined) parts.push(`id_token=${fingerprint(tokens.idToken)}`);
    }
  }
  return parts.join(' ');
}
