// A host app that shuts down as the README says: on SIGTERM, stop accepting, await router.close(), then exit.
// Usage: node shutdown-app.mjs '<json>' with { tokenUrl, mode, clientId?, clientSecret?, redisUrl?, prefix? }.
// Prints {"port": N} once it listens. Its onRotation hook "persists" the rotated token slowly, on a timer, and
// prints it when done: what an abrupt exit would lose.
// mode "signal": the graceful shutdown on SIGTERM; "abrupt": exit once server.close() calls back, the control. mode "idle": on a line on stdin, server.close() and
// router.close() with no process.exit(), printing {"closed": true}: the process must then end by itself.
import express from 'express';
import { ninjaAuth, RedisStore } from 'ninja-auth';

const { tokenUrl, mode, clientId, clientSecret, redisUrl, prefix } = JSON.parse(process.argv[2] ?? '{}');
/** @type {import('ioredis').Redis | undefined} */
let redis;
if (redisUrl !== undefined) {
  const { Redis } = await import('ioredis');
  redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  redis.on('error', () => undefined);
  const client = redis;
  await new Promise((resolve) => client.once('ready', resolve));
}
/** @param {Record<string, unknown>} line */
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const router = ninjaAuth({
  upstream: { tokenUrl },
  clientId,
  clientSecret,
  ...(redis === undefined ? {} : { store: new RedisStore({ client: redis, prefix }) }),
  hooks: {
    onRotation: async (event) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      print({ persisted: event.tokens.refreshToken, replayed: event.replayed });
    },
  },
});
const app = express();
app.use(router);
const server = app.listen(0, '127.0.0.1', () => print({ port: /** @type {import('node:net').AddressInfo} */ (server.address()).port }));

if (mode === 'abrupt') {
  // The usual shutdown without router.close(): exit as soon as the server has closed its connections.
  process.on('SIGTERM', () => {
    print({ closing: true });
    server.close(() => process.exit(0));
  });
} else if (mode === 'signal') {
  process.on('SIGTERM', async () => {
    print({ closing: true });
    server.close();
    await router.close();
    redis?.disconnect();
    print({ closed: true });
    process.exit(0);
  });
} else {
  process.stdin.once('data', async () => {
    await new Promise((resolve) => server.close(resolve));
    await router.close();
    redis?.disconnect();
    print({ closed: true });
  });
}
