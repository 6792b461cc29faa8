// The host app: an Express server that mounts ninja-auth, configured from NINJA_AUTH_* environment
// variables, with hooks that print what happens to each token.
import express from 'express';
import { ninjaAuth } from 'ninja-auth';

const short = (/** @type {string | undefined} */ token) => (token === undefined ? '(none)' : `${token.slice(0, 10)}…`);

/** @param {(line: string) => void} print */
export function createHostApp(print) {
  const app = express();
  app.disable('x-powered-by');
  app.use(
    ninjaAuth({
      hooks: {
        onTokenIssued: (event) => print(`  [hook] ${event.grantType} login for ${event.username ?? 'client'}: refresh token ${short(event.tokens.refreshToken)}`),
        onRotation: (event) =>
          print(`  [hook] rotation: ${short(event.previousRefreshToken)} → ${short(event.tokens.refreshToken)} (rotated: ${event.rotated})`),
        onRevoke: (event) => print(`  [hook] revoked ${short(event.token)}`),
        onUpstreamError: (event) => print(`  [hook] upstream said ${event.status} ${event.error ?? ''}`),
      },
    }),
  );
  return app;
}
