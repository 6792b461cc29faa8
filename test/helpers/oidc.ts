import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider, { type ClientMetadata, type Configuration } from 'oidc-provider';
import { type Listening, listen, tapBody } from './servers.js';

export const OIDC_REDIRECT_URI = 'http://127.0.0.1/callback';

export interface OidcUnderTest extends Listening {
  readonly issuer: string;
  readonly tokenUrl: string;
  readonly revokeUrl: string;
  /** POSTs to the token endpoint so far. */
  readonly tokenCalls: () => number;
  /** The exact bytes of every token endpoint reply, in order. */
  readonly tokenReplies: Buffer[];
  /** Runs the authorization code + PKCE flow as a browser would (login and consent done for `alice`). */
  authorize(clientId: string, options?: { scope?: string }): Promise<{ code: string; codeVerifier: string; redirectUri: string }>;
}

export const oidcClient = (clientId: string, clientSecret: string, method: 'client_secret_post' | 'client_secret_basic'): ClientMetadata => ({
  client_id: clientId,
  client_secret: clientSecret,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [OIDC_REDIRECT_URI],
  token_endpoint_auth_method: method,
});

/**
 * panva's oidc-provider, a certified OpenID provider, in this process on loopback. Strict rotation by default:
 * every refresh rotates, and presenting a used refresh token revokes the whole grant.
 */
export async function startOidcProvider(clients: ClientMetadata[], extra: Partial<Configuration> = {}): Promise<OidcUnderTest> {
  let handler: ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) | undefined;
  let tokenCalls = 0;
  const tokenReplies: Buffer[] = [];
  const listening = await listen((req, res) => {
    if (req.method === 'POST' && req.url === '/token') {
      tokenCalls++;
      tapBody(res, (body) => tokenReplies.push(body));
    }
    handler!(req, res);
  });
  const issuer = listening.origin;
  const provider = new Provider(issuer, {
    clients,
    cookies: { keys: ['ninja-auth-test-cookie-key'] },
    features: { revocation: { enabled: true }, devInteractions: { enabled: false } },
    rotateRefreshToken: true,
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    jwks: { keys: [signingKey()] },
    ttl: { AccessToken: 600, IdToken: 600, RefreshToken: 86_400, Grant: 86_400, Session: 86_400, Interaction: 600, AuthorizationCode: 60 },
    ...extra,
  });
  provider.on('server_error', (_ctx, error) => {
    throw error;
  });
  provider.use(async (ctx, next) => {
    if (!ctx.path.startsWith('/interaction/')) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name === 'login') {
      await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: 'alice' } }, { mergeWithLastSubmission: false });
    } else {
      const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params['client_id']) });
      const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      const grantId = await grant.save();
      await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    ctx.respond = false;
  });
  handler = provider.callback();

  return {
    ...listening,
    issuer,
    tokenUrl: `${issuer}/token`,
    revokeUrl: `${issuer}/token/revocation`,
    tokenCalls: () => tokenCalls,
    tokenReplies,
    authorize: (clientId, options = {}) => authorizationCodeFlow(issuer, clientId, options.scope ?? 'openid offline_access'),
  };
}

let rsaKey: object | undefined;

/** A signing key of the tests' own, made once, instead of oidc-provider's development keys. */
function signingKey(): object {
  rsaKey ??= { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };
  return rsaKey;
}

async function authorizationCodeFlow(issuer: string, clientId: string, scope: string) {
  const codeVerifier = randomBytes(32).toString('base64url');
  const query = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: OIDC_REDIRECT_URI,
    scope,
    prompt: 'consent',
    state: randomBytes(8).toString('hex'),
    code_challenge: createHash('sha256').update(codeVerifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  const cookies = new Map<string, string>();
  let url = `${issuer}/auth?${query}`;
  for (let step = 0; step < 10; step++) {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const at = pair!.indexOf('=');
      cookies.set(pair!.slice(0, at), pair!.slice(at + 1));
    }
    const location = res.headers.get('location');
    if (location === null) throw new Error(`the authorization flow stopped with ${res.status}: ${await res.text()}`);
    const next = new URL(location, url);
    if (next.href.startsWith(OIDC_REDIRECT_URI)) {
      const code = next.searchParams.get('code');
      if (code === null) throw new Error(`no code: ${next.search}`);
      return { code, codeVerifier, redirectUri: OIDC_REDIRECT_URI };
    }
    url = next.href;
  }
  throw new Error('the authorization flow did not finish');
}
