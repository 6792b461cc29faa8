// A host app that shuts down as the README says: on SIGTERM, stop accepting, await router.close(), then exit.
// Usage: node shutdown-app.mjs <tokenUrl> <mode>. Prints {"port": N} once it listens. Its onRotation hook
// "persists" the rotated token slowly, on a timer, and prints it when done: what an abrupt exit would lose.
// mode "signal": the graceful shutdown on SIGTERM. mode "idle": one refresh, then server.close() and
// router.close() with no process.exit(), printing "closed": the process must end by itself.
import express from 'express';
import { ninjaAuth } from 'ninja-auth';

const [tokenUrl, mode] = process.argv.slice(2);
const router = ninjaAuth({
  upstream: { tokenUrl },
  hooks: {
    onRotation: async (event) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      process.stdout.write(`${JSON.stringify({ persisted: event.tokens.refreshToken })}\n`);
    },
  },
});
const app = express();
app.use(router);
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});

if (mode === 'signal') {
  process.on('SIGTERM', async () => {
    process.stdout.write(`${JSON.stringify({ closing: true })}\n`);
    server.close();
    await router.close();
    process.stdout.write(`${JSON.stringify({ closed: true })}\n`);
    process.exit(0);
  });
} else {
  process.stdin.once('data', async () => {
    await new Promise((resolve) => server.close(resolve));
    await router.close();
    process.stdout.write(`${JSON.stringify({ closed: true })}\n`);
  });
}
