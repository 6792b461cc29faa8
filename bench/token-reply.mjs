// The benchmark's token reply: ~1.26 KB of JSON with a fresh refresh token, as bench/upstream.mjs serves it.
const idToken = `eyJhbGciOiJSUzI1NiJ9.${'e'.repeat(700)}.${'s'.repeat(340)}`;

/** The body of the n-th token reply. */
export const tokenReplyBody = (n) =>
  `{"access_token":"at-${n}-bench-access-token-value","refresh_token":"rt-${n}-bench-refresh-token-value","token_type":"Bearer","expires_in":3600,"scope":"openid offline_access","id_token":"${idToken}"}`;
