import { performance } from 'node:perf_hooks';
import { type Instrumentation, NO_INSTRUMENTATION } from '../instrumentation.js';
import type { UpstreamClient, UpstreamOutcome } from '../upstream.js';
import { serverAddressOf } from './conventions.js';

/** The client with each exchange reported to the instrumentation; the client itself when telemetry is off. */
export function observedUpstream(client: UpstreamClient, instrumentation: Instrumentation): UpstreamClient {
  if (instrumentation === NO_INSTRUMENTATION) return client;
  const report = (endpoint: Parameters<Instrumentation['upstreamExchange']>[0]['endpoint'], url: string, startedAt: number, outcome: UpstreamOutcome): UpstreamOutcome => {
    const durationMs = performance.now() - startedAt;
    const serverAddress = serverAddressOf(url);
    instrumentation.upstreamExchange(
      outcome.kind === 'answered'
        ? { endpoint, serverAddress, durationMs, status: outcome.status }
        : { endpoint, serverAddress, durationMs, errorType: outcome.cause },
    );
    return outcome;
  };
  return {
    send: async (call) => {
      const startedAt = performance.now();
      return report(call.endpoint ?? 'token', call.url, startedAt, await client.send(call));
    },
    get: async (url) => {
      const startedAt = performance.now();
      return report('discovery', url, startedAt, await client.get(url));
    },
    release: client.release,
  };
}
