// An OAuth 2.0 authorization server for the demo and the tests, built on @node-oauth/oauth2-server: the
// password, authorization_code, client_credentials and refresh_token grants, refresh tokens that rotate and
// are dead once used, and an RFC 7009 revocation endpoint. Everything is kept in memory. A client registered
// with a `publicKey` authenticates with private_key_jwt (RFC 7523) instead of a secret.
import { createPublicKey, randomBytes } from 'node:crypto';
import express from 'express';
import { decodeJwt, jwtVerify } from 'jose';
import OAuth2Server from '@node-oauth/oauth2-server';

const { Request, Response } = OAuth2Server;
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * @typedef {{ id: string, secret?: string, publicKey?: import('node:crypto').JsonWebKey, grants: string[], redirectUris?: string[] }} ProviderClient
 * @typedef {{ username: string, password: string }} ProviderUser
 * @typedef {{ clients?: ProviderClient[], users?: ProviderUser[], accessTokenLifetime?: number }} ProviderOptions
 */

export const DEMO_CLIENT = { id: 'demo-app', secret: 'demo-secret-9f2c1e', grants: ['password', 'authorization_code', 'client_credentials', 'refresh_token'], redirectUris: ['http://127.0.0.1/callback'] };
export const DEMO_USER = { username: 'alice', password: 'correct horse battery staple' };

/** @param {ProviderOptions} [options] */
export function createProvider(options = {}) {
  /** @type {ProviderClient[]} */ const clients = options.clients ?? [DEMO_CLIENT];
  const users = options.users ?? [DEMO_USER];
  /** @type {Map<string, any>} */ const accessTokens = new Map();
  /** @type {Map<string, any>} */ const refreshTokens = new Map();
  /** @type {Map<string, any>} */ const codes = new Map();
  const stats = { tokenRequests: 0, revokeRequests: 0, assertionsVerified: 0 };
  /** @type {Set<string>} */ const usedJtis = new Set();
  const opaque = () => randomBytes(24).toString('base64url');

  const findClient = (/** @type {string} */ id, /** @type {string | null | undefined} */ secret) => {
    const client = clients.find((c) => c.id === id);
    if (client === undefined) return false;
    if (secret != null && client.secret !== secret) return false;
    return { id: client.id, grants: client.grants, redirectUris: client.redirectUris ?? [] };
  };

  const model = {
    getClient: async (/** @type {string} */ id, /** @type {string | null} */ secret) => findClient(id, secret),
    getUser: async (/** @type {string} */ username, /** @type {string} */ password) =>
      users.find((u) => u.username === username && u.password === password) ? { id: username } : false,
    getUserFromClient: async (/** @type {{ id: string }} */ client) => ({ id: `client:${client.id}` }),
    generateAccessToken: async () => `at_${opaque()}`,
    generateRefreshToken: async () => `rt_${opaque()}`,
    saveToken: async (/** @type {any} */ token, /** @type {any} */ client, /** @type {any} */ user) => {
      const saved = { ...token, client, user };
      accessTokens.set(token.accessToken, saved);
      if (token.refreshToken) refreshTokens.set(token.refreshToken, saved);
      return saved;
    },
    getAccessToken: async (/** @type {string} */ token) => accessTokens.get(token) ?? false,
    getRefreshToken: async (/** @type {string} */ token) => refreshTokens.get(token) ?? false,
    revokeToken: async (/** @type {any} */ token) => {
      const known = refreshTokens.delete(token.refreshToken);
      if (known) accessTokens.delete(token.accessToken);
      return known;
    },
    saveAuthorizationCode: async (/** @type {any} */ code, /** @type {any} */ client, /** @type {any} */ user) => {
      const saved = { ...code, client, user };
      codes.set(code.authorizationCode, saved);
      return saved;
    },
    getAuthorizationCode: async (/** @type {string} */ code) => codes.get(code) ?? false,
    revokeAuthorizationCode: async (/** @type {any} */ code) => codes.delete(code.authorizationCode),
    validateScope: async (/** @type {unknown} */ _user, /** @type {unknown} */ _client, /** @type {string[] | undefined} */ scope) => scope ?? ['profile'],
  };

  const server = new OAuth2Server({
    model,
    accessTokenLifetime: options.accessTokenLifetime ?? 3600,
    allowEmptyState: true,
    requireClientAuthentication: { password: true, refresh_token: true, authorization_code: true },
  });
  // For requests whose client the assertion has already authenticated.
  const assertedServer = new OAuth2Server({
    model,
    accessTokenLifetime: options.accessTokenLifetime ?? 3600,
    allowEmptyState: true,
    requireClientAuthentication: { password: false, refresh_token: false, authorization_code: false, client_credentials: false },
  });

  /**
   * private_key_jwt: the client's id when the request carries a valid assertion (signed with the client's
   * registered key, iss = sub = client id, aud = this endpoint, at most 60 s to live, a jti not seen before);
   * `undefined` when it carries none; throws when it carries a bad one.
   * @param {import('express').Request} req
   */
  const assertedClient = async (req) => {
    const assertion = req.body?.client_assertion;
    if (assertion === undefined) return undefined;
    const fail = () => Object.assign(new Error('client assertion rejected'), { name: 'invalid_client', code: 401 });
    if (req.body.client_assertion_type !== JWT_BEARER || typeof assertion !== 'string') throw fail();
    let id;
    try {
      id = req.body.client_id ?? decodeJwt(assertion).sub;
    } catch {
      throw fail();
    }
    const client = clients.find((c) => c.id === id && c.publicKey !== undefined);
    if (client?.publicKey === undefined) throw fail();
    const audience = `${req.protocol}://${req.get('host')}${req.path}`;
    try {
      const { payload } = await jwtVerify(assertion, createPublicKey({ key: client.publicKey, format: 'jwk' }), {
        issuer: client.id, subject: client.id, audience, maxTokenAge: 60, requiredClaims: ['jti', 'iat', 'exp'],
      });
      const jti = String(payload.jti);
      if (usedJtis.has(jti) || Number(payload.exp) - Number(payload.iat) > 60) throw fail();
      usedJtis.add(jti);
    } catch {
      throw fail();
    }
    stats.assertionsVerified++;
    return client.id;
  };

  const app = express();
  app.disable('x-powered-by');
  app.use(express.urlencoded({ extended: false }));

  app.post('/oauth/token', async (req, res) => {
    stats.tokenRequests++;
    const response = new Response(res);
    try {
      const asserted = await assertedClient(req);
      await (asserted === undefined ? server : assertedServer).token(new Request(req), response, { alwaysIssueNewRefreshToken: true });
    } catch (error) {
      sendOAuthError(res, response, error);
      return;
    }
    res.set(response.headers).status(response.status ?? 200).json(response.body);
  });

  // The user "logs in" by naming themselves in ?login=; enough to obtain a real authorization code.
  app.get('/oauth/authorize', async (req, res) => {
    const response = new Response(res);
    const login = String(req.query['login'] ?? '');
    try {
      await server.authorize(new Request(req), response, {
        authenticateHandler: { handle: () => (users.some((u) => u.username === login) ? { id: login } : undefined) },
      });
    } catch (error) {
      sendOAuthError(res, response, error);
      return;
    }
    res.set(response.headers).status(response.status ?? 302).end();
  });

  // RFC 7009: the client authenticates; an unknown token is not an error.
  app.post('/oauth/revoke', async (req, res) => {
    stats.revokeRequests++;
    let asserted;
    try {
      asserted = await assertedClient(req);
    } catch (error) {
      sendOAuthError(res, new Response(res), error);
      return;
    }
    const [id, secret] = asserted === undefined ? clientCredentials(req) : [asserted, undefined];
    const needsAssertion = clients.find((c) => c.id === id)?.publicKey !== undefined;
    if (id === undefined || (asserted === undefined && (needsAssertion || !findClient(id, secret ?? null)))) {
      res.status(401).set('www-authenticate', 'Basic realm="demo"').json({ error: 'invalid_client', error_description: 'client authentication failed' });
      return;
    }
    const token = req.body?.token;
    if (typeof token !== 'string' || token === '') {
      res.status(400).json({ error: 'invalid_request', error_description: 'missing token' });
      return;
    }
    const asRefresh = refreshTokens.get(token);
    if (asRefresh?.client.id === id) {
      refreshTokens.delete(token);
      accessTokens.delete(asRefresh.accessToken);
    }
    const asAccess = accessTokens.get(token);
    if (asAccess?.client.id === id) accessTokens.delete(token);
    res.status(200).end();
  });

  return { app, stats, refreshTokens, accessTokens };
}

/** @param {import('express').Request} req @returns {[string | undefined, string | undefined]} */
function clientCredentials(req) {
  const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
  if (basic) {
    const [id, secret] = Buffer.from(basic[1] ?? '', 'base64').toString().split(':');
    const decode = (/** @type {string | undefined} */ s) => (s === undefined ? undefined : decodeURIComponent(s.replace(/\+/g, ' ')));
    return [decode(id), decode(secret)];
  }
  return [req.body?.client_id, req.body?.client_secret];
}

/** @param {import('express').Response} res @param {any} response @param {any} error */
function sendOAuthError(res, response, error) {
  const status = typeof error?.code === 'number' ? error.code : 500;
  res.set(response.headers ?? {}).set('cache-control', 'no-store');
  res.status(status).json({ error: error?.name ?? 'server_error', error_description: error?.message ?? 'error' });
}
