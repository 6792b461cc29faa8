import { createHash, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http, { type IncomingHttpHeaders, type RequestListener } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Provider, { type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
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
  /** Every POST the provider handled, with the parameters it parsed: what the router sent. */
  readonly received: ReceivedByProvider[];
  /** With `tls`: the origin of the second listener, which asks for client certificates (the mTLS aliases). */
  readonly mtlsOrigin: string | undefined;
}

export interface ReceivedByProvider {
  readonly path: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly headers: IncomingHttpHeaders;
  /** Which listener: `mtls` asks for a client certificate, `main` does not. */
  readonly listener: 'main' | 'mtls';
  /** SHA-256 (base64url) of the client certificate presented, if any. */
  readonly certificateThumbprint: string | undefined;
}

/** Serve the provider over https with this certificate, and token + revocation again on a listener that asks for client certificates. */
export interface OidcTls {
  readonly cert: string;
  readonly key: string;
  /** Trusted for client certificates (self-signed ones are let through the handshake, and checked by the provider). */
  readonly ca: string;
  /** Publish the mTLS listener as `mtls_endpoint_aliases` in the metadata (RFC 8705 §5). Default true. */
  readonly aliases?: boolean;
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
export async function startOidcProvider(clients: ClientMetadata[], extra: Partial<Configuration> = {}, tls?: OidcTls): Promise<OidcUnderTest> {
  let handler: RequestListener | undefined;
  let tokenCalls = 0;
  const tokenReplies: Buffer[] = [];
  const received: ReceivedByProvider[] = [];
  const serve: RequestListener = (req, res) => {
    if (req.method === 'POST' && req.url === '/token') {
      tokenCalls++;
      tapBody(res, (body) => tokenReplies.push(body));
    }
    handler!(req, res);
  };
  const listening = tls === undefined ? await listen(serve) : await listenTls(serve, { cert: tls.cert, key: tls.key });
  const mtls = tls === undefined ? undefined : await listenTls(serve, { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: false });
  const issuer = listening.origin;
  const provider = new Provider(issuer, {
    clients,
    cookies: { keys: ['ninja-auth-test-cookie-key'] },
    features: { revocation: { enabled: true }, devInteractions: { enabled: false }, ...(tls === undefined ? {} : { mTLS: mtlsFeature() }) },
    enabledJWA: { clientAuthSigningAlgValues: ['HS256', 'RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA'] },
    ...(tls === undefined ? {} : { clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'] }),
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
    await next();
    const oidc = (ctx as Partial<KoaContextWithOIDC>).oidc;
    if (ctx.method === 'POST' && oidc?.body !== undefined) {
      const socket = ctx.req.socket as Partial<TLSSocket>;
      received.push({
        path: ctx.path,
        params: { ...oidc.body },
        headers: { ...ctx.headers },
        listener: mtls !== undefined && socket.localPort === mtls.port ? 'mtls' : 'main',
        certificateThumbprint: peerCertificate(ctx)?.fingerprint256,
      });
    }
    if (ctx.path === '/.well-known/openid-configuration' && mtls !== undefined && tls?.aliases !== false && ctx.status === 200) {
      const aliases = { token_endpoint: `${mtls.origin}/token`, revocation_endpoint: `${mtls.origin}/token/revocation` };
      ctx.body = { ...(ctx.body as object), mtls_endpoint_aliases: aliases };
    }
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
    close: async () => {
      await mtls?.close();
      await listening.close();
    },
    received,
    mtlsOrigin: mtls?.origin,
    issuer,
    tokenUrl: `${issuer}/token`,
    revokeUrl: `${issuer}/token/revocation`,
    tokenCalls: () => tokenCalls,
    tokenReplies,
    authorize: (clientId, options = {}) => authorizationCodeFlow(issuer, clientId, options.scope ?? 'openid offline_access', tls?.ca),
  };
}

/** An https server on a free loopback port. */
async function listenTls(handler: RequestListener, options: https.ServerOptions): Promise<Listening & { port: number }> {
  const server = https.createServer(options, handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server: server as unknown as http.Server,
    port,
    origin: `https://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The certificate the client presented on this connection, as node:tls read it. */
function peerCertificate(ctx: { req: http.IncomingMessage }): X509Certificate | undefined {
  const socket = ctx.req.socket as Partial<TLSSocket>;
  const peer = socket.getPeerCertificate?.();
  return peer?.raw === undefined ? undefined : new X509Certificate(peer.raw);
}

/** RFC 8705 in oidc-provider: the certificate from the connection; "authorized" means it chains to the listener's CA. */
function mtlsFeature() {
  return {
    enabled: true,
    certificateBoundAccessTokens: false,
    tlsClientAuth: true,
    selfSignedTlsClientAuth: true,
    getCertificate: (ctx: KoaContextWithOIDC) => peerCertificate(ctx),
    certificateAuthorized: (ctx: KoaContextWithOIDC) => (ctx.req.socket as Partial<TLSSocket>).authorized === true,
    certificateSubjectMatches: (ctx: KoaContextWithOIDC, property: string, expected: string) => {
      const subject = peerCertificate(ctx)?.subject;
      // node:crypto lists the RDNs one a line, most significant first; RFC 4514 joins them the other way round.
      return property === 'tls_client_auth_subject_dn' && subject !== undefined && subject.split('\n').reverse().join(',') === expected;
    },
  };
}

/** A GET that does not follow redirects, over https trusting `ca` where given. */
function getManual(url: string, cookie: string, ca: string | undefined): Promise<{ status: number; location: string | null; setCookies: string[]; text: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const transport = target.protocol === 'https:' ? https : http;
    const req = transport.get(target, { headers: { cookie }, ...(ca === undefined ? {} : { ca }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const setCookie = res.headers['set-cookie'] ?? [];
        resolve({ status: res.statusCode ?? 0, location: res.headers.location ?? null, setCookies: setCookie, text: Buffer.concat(chunks).toString() });
      });
    });
    req.on('error', reject);
  });
}

let rsaKey: object | undefined;

/** A signing key of the tests' own, made once, instead of oidc-provider's development keys. */
function signingKey(): object {
  rsaKey ??= { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };
  return rsaKey;
}

async function authorizationCodeFlow(issuer: string, clientId: string, scope: string, ca: string | undefined) {
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
    const res = await getManual(url, [...cookies].map(([k, v]) => `${k}=${v}`).join('; '), ca);
    for (const cookie of res.setCookies) {
      const [pair] = cookie.split(';');
      const at = pair!.indexOf('=');
      cookies.set(pair!.slice(0, at), pair!.slice(at + 1));
    }
    const location = res.location;
    if (location === null) throw new Error(`the authorization flow stopped with ${res.status}: ${res.text.replace(/<style>[^]*<\/style>/, "").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").slice(0, 400)}`);
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
