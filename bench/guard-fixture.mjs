// A built guard over a memory store with a fake upstream (no network): what bench/memory-store-ops.mjs and
// bench/instructions.mjs measure a guarded refresh on.
import { tokenReplyBody } from './token-reply.mjs';

export const HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache', date: new Date(0).toUTCString() };
const tokenUrl = 'http://127.0.0.1:9/token';

/** The build in `dir` (a checkout, built): its modules, and `refresh()`, one guarded refresh that rotates. */
export async function loadGuard(dir) {
  const dist = new URL(`${dir}/dist/esm/`, 'file:///').href;
  const { MemoryStore } = await import(`${dist}index.js`);
  const { parseOptions } = await import(`${dist}options.js`);
  const { rotationGuard } = await import(`${dist}rotation/guard.js`);
  const { answered } = await import(`${dist}upstream.js`);
  const { sealReply } = await import(`${dist}rotation/reply-cipher.js`);
  const config = parseOptions({ upstream: { tokenUrl }, clientId: 'bench-client', clientSecret: 'bench-secret', store: new MemoryStore(), telemetry: false }, {});
  let calls = 0;
  const guard = rotationGuard(config, async () => answered(200, HEADERS, Buffer.from(tokenReplyBody(++calls))));
  let n = 0;
  return {
    MemoryStore,
    answered,
    sealReply,
    refresh: async () => {
      const refreshToken = `rt-bench-${++n}-abcdefghijklmnop`;
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'bench-client', client_secret: 'bench-secret' });
      const result = await guard.refresh({ url: tokenUrl, form, endpoint: 'refresh_token' }, refreshToken);
      await result.settled;
    },
    dispose: () => guard.dispose(),
  };
}
