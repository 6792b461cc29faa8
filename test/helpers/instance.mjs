// One server instance for the multi-process tests: the built package, mounted with a RedisStore.
// Usage: node instance.mjs <tokenUrl> <redisUrl> <prefix>. Prints {"port": N} once it listens.
import { once } from 'node:events';
import express from 'express';
import { Redis } from 'ioredis';
import { ninjaAuth, RedisStore } from 'ninja-auth';

const [tokenUrl, redisUrl, prefix] = process.argv.slice(2);
const client = new Redis(redisUrl ?? '', { maxRetriesPerRequest: 1, enableOfflineQueue: false });
client.on('error', () => undefined);
await once(client, 'ready');

const app = express();
// How many refreshes reached this process, and how many commands its store sent: a test holds an upstream answer
// until every refresh it sent has arrived and every process has tried the lock.
let arrived = 0;
let storeCommands = 0;
app.post('/auth/refresh_token', (_req, _res, next) => {
  arrived++;
  next();
});
app.get('/arrived', (_req, res) => void res.json({ refreshes: arrived, storeCommands }));
const counted = {
  /** @param {string} command @param {Array<string | number>} args */
  call: (command, ...args) => (storeCommands++, client.call(command, ...args)),
};
app.use(ninjaAuth({ upstream: { tokenUrl }, store: new RedisStore({ client: counted, prefix }) }));
const server = app.listen(0, '127.0.0.1', () => {
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close();
  client.disconnect();
});
