// One proxy under test, in its own process: node bench/target.mjs <kind> <tokenUrl> [redisUrl].
// Kinds: hpm (http-proxy-middleware), raw (node:http by hand, the floor), axios (a hand-written Express + axios passthrough), ninja-auth,
// ninja-auth-plain (rotation safety off), ninja-auth-redis, ninja-auth-redis-pipelined (its ioredis client with
// enableAutoPipelining); and for the cost of telemetry, ninja-auth-telemetry-off
// (telemetry: false), ninja-auth-telemetry-noop (@opentelemetry/api loaded, no SDK registered: its no-op
// providers) and ninja-auth-telemetry-sdk (the real SDK: MeterProvider with a periodic reader, BasicTracerProvider
// with a batch processor, both exporting to nowhere). The other ninja-auth kinds run with telemetry: false, as for
// a team without @opentelemetry/api (this repository has it installed, as a devDependency).
// Prints {"port"} when listening; answers the IPC message 'stats' with its CPU time, peak RSS and Redis commands sent.
import http from 'node:http';
import { createRequire } from 'node:module';

// NINJA_AUTH_FROM names another build's entry (…/dist/esm/index.js), for an A/B of two builds in one run.
const { MemoryStore, ninjaAuth, RedisStore } = await import(process.env.NINJA_AUTH_FROM ?? 'ninja-auth');
// Express and ioredis come from the checkout the build is in, as in an app: the very copies the build loads
// (both are CommonJS, so one instance for its imports and these requires). A build from another checkout run
// inside this checkout's Express would load a second Express for its router: in an A/A run of identical code,
// 17-21 MB more peak RSS for that side.
const fromBuild = createRequire(process.env.NINJA_AUTH_FROM ?? import.meta.url);
const express = fromBuild('express');

const [kind, tokenUrl, redisUrl] = process.argv.slice(2);
const CLIENT = { clientId: 'bench-client', clientSecret: 'bench-secret' };
const app = express();
app.disable('x-powered-by');

if (kind === 'hpm') {
  const { createProxyMiddleware } = await import('http-proxy-middleware');
  const target = new URL(tokenUrl);
  app.use('/auth/refresh_token', createProxyMiddleware({ target: target.origin, changeOrigin: true, pathRewrite: () => target.pathname, agent: new http.Agent({ keepAlive: true }) }));
} else if (kind === 'raw') {
  // The floor for any Express middleware that buffers: node:http.request, raw bytes, writeHead/end.
  const agent = new http.Agent({ keepAlive: true });
  const target = new URL(tokenUrl);
  app.post('/auth/refresh_token', (req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      form.set('client_id', CLIENT.clientId);
      form.set('client_secret', CLIENT.clientSecret);
      const body = form.toString();
      const upstream = http.request({ hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (reply) => {
        const parts = [];
        reply.on('data', (chunk) => parts.push(chunk));
        reply.on('end', () => {
          const bytes = Buffer.concat(parts);
          res.writeHead(reply.statusCode, { 'content-type': reply.headers['content-type'], 'cache-control': 'no-store', 'content-length': bytes.length });
          res.end(bytes);
        });
      });
      upstream.end(body);
    });
  });
} else if (kind === 'axios') {
  const { default: axios } = await import('axios');
  app.post('/auth/refresh_token', express.urlencoded({ extended: false }), async (req, res) => {
    const upstream = await axios.post(tokenUrl, new URLSearchParams({ ...req.body, client_id: CLIENT.clientId, client_secret: CLIENT.clientSecret }), { validateStatus: () => true });
    res.status(upstream.status).set('content-type', upstream.headers['content-type']).set('cache-control', 'no-store').send(upstream.data);
  });
} else {
  const store =
    kind === 'ninja-auth-redis' || kind === 'ninja-auth-redis-pipelined'
      ? new RedisStore({ client: await redisClient(redisUrl, kind === 'ninja-auth-redis-pipelined') })
      : new MemoryStore(JSON.parse(process.env.NINJA_AUTH_BENCH_STORE ?? '{}'));
  // NINJA_AUTH_BENCH_ROTATION and NINJA_AUTH_BENCH_STORE: the memory-store kind's rotation and MemoryStore options
  // as JSON, for bench/rotation-parts.mjs.
  const rotation = kind === 'ninja-auth-plain' ? { coalesce: false, reuseGraceMs: 0, reuseDetectionMs: 0 } : JSON.parse(process.env.NINJA_AUTH_BENCH_ROTATION ?? '{}');
  const telemetry = await telemetryFor(kind);
  let rotations = 0;
  app.use(ninjaAuth({ upstream: { tokenUrl }, ...CLIENT, ...rotation, store, ...telemetry, hooks: { onRotation: () => void rotations++ } }));
}

/**
 * The `telemetry` option: `false` but for the telemetry kinds (the API's global no-op providers, or the real SDK
 * exporting nowhere); none at all for a --compare build older than the option.
 */
async function telemetryFor(kind) {
  if (kind === 'ninja-auth-telemetry-noop') return { telemetry: {} };
  if (kind !== 'ninja-auth-telemetry-sdk') return knowsTelemetryOption() ? { telemetry: false } : {};
  const { MeterProvider, PeriodicExportingMetricReader } = await import('@opentelemetry/sdk-metrics');
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const nowhere = { export: (_items, done) => done({ code: 0 }), forceFlush: async () => undefined, shutdown: async () => undefined };
  return {
    telemetry: {
      meterProvider: new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: nowhere, exportIntervalMillis: 10_000 })] }),
      tracerProvider: new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(nowhere, { maxQueueSize: 65_536, scheduledDelayMillis: 1000 })] }),
    },
  };
}

function knowsTelemetryOption() {
  try {
    void ninjaAuth({ upstream: { tokenUrl }, telemetry: false }).close();
    return true;
  } catch {
    return false;
  }
}

let redisCommands = 0;

/**
 * An ioredis client, as the store uses it (its call()), counting the commands it sends; with auto-pipelining, the
 * commands issued in one turn of the event loop (by every request in it) go out in one write.
 */
async function redisClient(url, autoPipelining = false) {
  const { Redis } = fromBuild('ioredis');
  const client = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, enableAutoPipelining: autoPipelining });
  await new Promise((resolve) => client.once('ready', resolve));
  return { call: (...args) => (redisCommands++, client.call(...args)) };
}

const server = app.listen(0, '127.0.0.1', () => process.send?.({ port: server.address().port }));
server.keepAliveTimeout = 60_000;
process.on('message', (message) => {
  if (message === 'exit') process.exit(0);
  if (message !== 'stats') return;
  const cpu = process.cpuUsage();
  process.send?.({ cpuMicros: cpu.user + cpu.system, peakRssKb: process.resourceUsage().maxRSS, rssKb: Math.round(process.memoryUsage.rss() / 1024), redisCommands });
});
