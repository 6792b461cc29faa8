// The host app: an Express server that mounts ninja-auth, configured from NINJA_AUTH_* environment
// variables, with hooks that print what happens to each token. With REDIS_URL set, rotation state is shared
// through Redis, as it must be when the app runs as several instances. With METRICS_PORT set, the
// OpenTelemetry SDK is registered and ninja-auth's metrics are served for Prometheus on that port.
import http from 'node:http';
import express from 'express';
import { ninjaAuth, RedisStore } from 'ninja-auth';

const short = (/** @type {string | undefined} */ token) => (token === undefined ? '(none)' : `${token.slice(0, 10)}…`);

/** @param {(line: string) => void} print @param {import('ninja-auth').NinjaAuthStore} [store] */
export function createHostApp(print, store) {
  const app = express();
  app.disable('x-powered-by');
  app.use(
    ninjaAuth({
      ...(store === undefined ? {} : { store }),
      hooks: {
        onTokenIssued: (event) => print(`  [hook] ${event.grantType} login for ${event.username ?? 'client'}: refresh token ${short(event.tokens.refreshToken)}`),
        onRotation: (event) =>
          print(
            `  [hook] ${event.replayed ? 'replayed' : 'rotation'}: ${short(event.previousRefreshToken)} → ${short(event.tokens.refreshToken)} (rotated: ${event.rotated})`,
          ),
        onRevoke: (event) => print(`  [hook] revoked ${short(event.token)}`),
        onUpstreamError: (event) => print(`  [hook] upstream said ${event.status} ${event.error ?? ''}`),
        onReuseDetected: (event) => print(`  [hook] reuse of a rotated-away token ${event.refreshTokenFingerprint}, ${event.sinceRotationMs} ms after its rotation`),
        onStoreError: () => print('  [hook] the store failed; refreshing without it'),
      },
    }),
  );
  return app;
}

/** A RedisStore when REDIS_URL is set (ioredis is an optional peer dependency), else the default memory store. */
export async function storeFromEnvironment() {
  const url = process.env['REDIS_URL'];
  if (url === undefined || url === '') return { store: undefined, close: () => undefined, description: 'memory store' };
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  client.on('error', () => undefined);
  await new Promise((resolve) => client.once('ready', resolve));
  return { store: new RedisStore({ client }), close: () => client.disconnect(), description: `Redis store at ${url}` };
}

/**
 * With METRICS_PORT set (0: any free port), registers the OpenTelemetry SDK's MeterProvider globally, with the
 * Prometheus exporter as its reader, and serves what it reads at http://127.0.0.1:PORT/metrics. ninja-auth needs
 * no option for this: it records to the global providers of @opentelemetry/api (an optional peer) by default.
 */
export async function metricsFromEnvironment() {
  const port = process.env['METRICS_PORT'];
  if (port === undefined || port === '') return undefined;
  const { metrics } = await import('@opentelemetry/api');
  const { MeterProvider } = await import('@opentelemetry/sdk-metrics');
  const { PrometheusExporter } = await import('@opentelemetry/exporter-prometheus');
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  metrics.setGlobalMeterProvider(meterProvider);
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics') exporter.getMetricsRequestHandler(req, res);
    else res.writeHead(404).end();
  });
  await new Promise((resolve) => server.listen(Number(port), '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${address.port}/metrics`,
    close: async () => {
      server.close();
      await meterProvider.shutdown();
    },
  };
}
