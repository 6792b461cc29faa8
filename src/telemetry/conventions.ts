import type { EndpointName } from '../types.js';

/** The instrumentation scope: the meter's and the tracer's name. */
export const SCOPE = 'ninja-auth';

export const INSTRUMENTS = {
  requestDuration: 'ninja_auth.request.duration',
  upstreamDuration: 'ninja_auth.upstream.duration',
  refreshOutcomes: 'ninja_auth.refresh.outcomes',
  storeErrors: 'ninja_auth.store.errors',
  hookErrors: 'ninja_auth.hook.errors',
} as const;

/** Attribute names: OpenTelemetry's semantic conventions where one exists, `ninja_auth.*` for the rest. */
export const ATTR = {
  endpoint: 'ninja_auth.endpoint',
  outcome: 'ninja_auth.outcome',
  statusCode: 'http.response.status_code',
  serverAddress: 'server.address',
  errorType: 'error.type',
  storeOperation: 'ninja_auth.store.operation',
  hook: 'ninja_auth.hook',
  requestId: 'ninja_auth.request_id',
  grantType: 'ninja_auth.grant_type',
  /** The OAuth `error` of a reply the router made itself (`invalid_request`, …). */
  refusalError: 'ninja_auth.error',
  refreshTokenFingerprint: 'ninja_auth.refresh_token.fingerprint',
  sinceRotationMs: 'ninja_auth.reuse.since_rotation_ms',
} as const;

export const EVENTS = {
  replayed: 'ninja_auth.replayed',
  coalesced: 'ninja_auth.coalesced',
  reuseDetected: 'ninja_auth.reuse_detected',
} as const;

export const spanName = (endpoint: EndpointName): string => `ninja-auth ${endpoint}`;

/** Token requests take milliseconds to seconds; `timeoutMs` defaults to 10 s. OpenTelemetry's HTTP buckets. */
export const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

const hostNames = new Map<string, string>();
const MAX_CACHED_HOSTS = 64;

/** `server.address` of a URL: its host name, without an IPv6 address's brackets. Parsed once per URL. */
export function serverAddressOf(url: string): string {
  let host = hostNames.get(url);
  if (host === undefined) {
    try {
      host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
    } catch {
      host = 'unknown';
    }
    if (hostNames.size >= MAX_CACHED_HOSTS) hostNames.clear();
    hostNames.set(url, host);
  }
  return host;
}
