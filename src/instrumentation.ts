import type { RequestRecord } from './record.js';
import type { EndpointName, NinjaAuthHooks } from './types.js';

/** One upstream exchange, as `ninja_auth.upstream.duration` records it. */
export interface UpstreamExchangeRecord {
  /** The endpoint whose request caused the exchange, or `discovery` for a metadata fetch. */
  readonly endpoint: EndpointName | 'discovery';
  /** The upstream's host name (OpenTelemetry's `server.address`). */
  readonly serverAddress: string;
  readonly durationMs: number;
  /** The upstream's status, when it answered. */
  readonly status?: number;
  /** Why it did not answer (`timeout`, `ECONNREFUSED`…), when it did not. */
  readonly errorType?: string;
}

/** One request's span, opened when the router takes the request and ended with its record. */
export interface RequestTrace {
  /** Runs `work` with this request's span as the active one, so outbound instrumentation nests under it. */
  within<T>(work: () => T): T;
  end(record: RequestRecord): void;
}

/** Where the router reports what telemetry needs; every method must be cheap and must never throw. */
export interface Instrumentation {
  requestStarted(endpoint: EndpointName): RequestTrace;
  upstreamExchange(record: UpstreamExchangeRecord): void;
  /** A store operation failed (the refresh went on without the shared store). */
  storeError(operation: string): void;
  /** A hook threw, rejected or timed out. */
  hookError(hook: keyof NinjaAuthHooks): void;
}

const NO_TRACE: RequestTrace = { within: (work) => work(), end: () => undefined };

/** Telemetry off: nothing is recorded and nothing is loaded. */
export const NO_INSTRUMENTATION: Instrumentation = {
  requestStarted: () => NO_TRACE,
  upstreamExchange: () => undefined,
  storeError: () => undefined,
  hookError: () => undefined,
};
