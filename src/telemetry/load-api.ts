import type * as OpenTelemetryApi from '@opentelemetry/api';
import { telemetryLog } from '../log.js';
import { peerRequire } from '../peer-require.js';

export type OpenTelemetry = typeof OpenTelemetryApi;

let loaded: { readonly api: OpenTelemetry | undefined } | undefined;

/**
 * `@opentelemetry/api`, resolved as a peer from this package's location, or `undefined` when it is not installed.
 * Loaded on first use only, once; the ES module and CommonJS copies of the API share their providers through
 * `globalThis`, so which copy this is does not matter.
 */
export function openTelemetryApi(): OpenTelemetry | undefined {
  loaded ??= { api: load() };
  return loaded.api;
}

function load(): OpenTelemetry | undefined {
  try {
    const api = peerRequire('@opentelemetry/api') as OpenTelemetry;
    telemetryLog('@opentelemetry/api found: metrics and spans go to its providers');
    return api;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    telemetryLog(code === 'MODULE_NOT_FOUND' ? '@opentelemetry/api is not installed: telemetry is off' : '@opentelemetry/api could not be loaded (%s): telemetry is off', code);
    return undefined;
  }
}

/** The package's version, for the instrumentation scope; `undefined` if its package.json cannot be read. */
export function packageVersion(): string | undefined {
  try {
    const { version } = peerRequire('ninja-auth/package.json') as { version?: unknown };
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}
