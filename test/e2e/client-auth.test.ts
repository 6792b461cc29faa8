import { createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject, X509Certificate } from 'node:crypto';
import { format } from 'node:util';
import createDebug from 'debug';
import type { ClientMetadata } from 'oidc-provider';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NinjaAuthOptions } from '../../src/index.js';
import { testPki } from '../helpers/certs.js';
import { asBytes, hostApp } from '../helpers/host.js';
import { OIDC_REDIRECT_URI, type OidcUnderTest, type ReceivedByProvider, startOidcProvider } from '../helpers/oidc.js';

// Every client authentication method against oidc-provider, which enforces the method registered for each
// client (and, for assertions, their signature, iss, sub, aud, exp and that no jti is used twice). Each client
// does the code exchange, rotating refreshes, a revocation and a refused refresh through the router, and the
// test reads what the provider received.

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const pki = testPki();

type KeyForm = 'pem' | 'jwk' | 'keyObject';
interface KeyCase {
  readonly name: string;
  readonly type: 'rsa' | 'ec' | 'ed25519';
  readonly form: KeyForm;
  readonly alg: string;
  readonly curve?: string;
  /** Set as clientAssertionAlg. */
  readonly requestAlg?: string;
  /** Set as clientAssertionKid; a JWK's own kid is used otherwise. */
  readonly kidOption?: string;
}

const KEY_CASES: KeyCase[] = [
  { name: 'rsa-pem', type: 'rsa', form: 'pem', alg: 'RS256' },
  { name: 'rsa-jwk', type: 'rsa', form: 'jwk', alg: 'RS256' },
  { name: 'rsa-keyobject', type: 'rsa', form: 'keyObject', alg: 'RS256', kidOption: 'rsa-ko-1' },
  { name: 'rsa-pss', type: 'rsa', form: 'pem', alg: 'PS256', requestAlg: 'PS256' },
  { name: 'ec-pem', type: 'ec', form: 'pem', alg: 'ES256', curve: 'P-256' },
  { name: 'ec-jwk', type: 'ec', form: 'jwk', alg: 'ES256', curve: 'P-256' },
  { name: 'ec-keyobject', type: 'ec', form: 'keyObject', alg: 'ES256', curve: 'P-256' },
  { name: 'ec-p384', type: 'ec', form: 'pem', alg: 'ES384', curve: 'P-384' },
  { name: 'ec-p521', type: 'ec', form: 'jwk', alg: 'ES512', curve: 'P-521' },
  { name: 'ed25519-pem', type: 'ed25519', form: 'pem', alg: 'EdDSA' },
  { name: 'ed25519-jwk', type: 'ed25519', form: 'jwk', alg: 'EdDSA' },
  { name: 'ed25519-keyobject', type: 'ed25519', form: 'keyObject', alg: 'EdDSA' },
];

interface KeyClient {
  readonly id: string;
  readonly keyCase: KeyCase;
  readonly privateKey: KeyObject;
  readonly option: string | JsonWebKey | KeyObject;
  /** The kid the router must send, if any. */
  readonly kid: string | undefined;
  readonly metadata: ClientMetadata;
}

function generate(keyCase: KeyCase): KeyObject {
  if (keyCase.type === 'rsa') return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  if (keyCase.type === 'ec') return generateKeyPairSync('ec', { namedCurve: keyCase.curve! }).privateKey;
  return generateKeyPairSync('ed25519').privateKey;
}

function keyClient(keyCase: KeyCase): KeyClient {
  const privateKey = generate(keyCase);
  const jwkKid = keyCase.form === 'jwk' ? `${keyCase.name}-kid` : undefined;
  const kid = keyCase.kidOption ?? jwkKid;
  const option =
    keyCase.form === 'pem'
      ? (privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)
      : keyCase.form === 'jwk'
        ? { ...privateKey.export({ format: 'jwk' }), kid: jwkKid }
        : privateKey;
  const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const id = `pkjwt-${keyCase.name}`;
  return {
    id,
    keyCase,
    privateKey,
    option,
    kid,
    metadata: {
      ...codeClient(id, 'private_key_jwt'),
      token_endpoint_auth_signing_alg: keyCase.alg as ClientMetadata['token_endpoint_auth_signing_alg'],
      jwks: { keys: [{ ...publicJwk, ...(kid === undefined ? {} : { kid }) }] as never },
    },
  };
}

const codeClient = (id: string, method: ClientMetadata['token_endpoint_auth_method']): ClientMetadata => ({
  client_id: id,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [OIDC_REDIRECT_URI],
  token_endpoint_auth_method: method,
});

const keyClients = KEY_CASES.map(keyClient);
const SECRET_JWT_CLIENT = { id: 'secret-jwt', secret: 'a-client-secret-of-at-least-32-bytes-0123456789' };
const selfSignedJwk = (pem: string): object => {
  const cert = new X509Certificate(pem);
  return { ...cert.publicKey.export({ format: 'jwk' }), x5c: [cert.raw.toString('base64')] };
};
const MTLS_CLIENTS = {
  ca: { ...codeClient('mtls-ca-issued', 'tls_client_auth'), tls_client_auth_subject_dn: pki.client.subjectDn },
  selfSigned: { ...codeClient('mtls-self-signed', 'self_signed_tls_client_auth'), jwks: { keys: [selfSignedJwk(pki.selfSigned.cert)] as never } },
  encrypted: { ...codeClient('mtls-encrypted-key', 'tls_client_auth'), tls_client_auth_subject_dn: 'CN=ninja-auth-encrypted-key' },
} satisfies Record<string, ClientMetadata>;

// The debug output of every flow in this file, checked at the end.
const logLines: string[] = [];
/** Every token and assertion the flows saw, none of which may appear in the log. */
const secretsSeen = new Set<string>();

let jwtOp: OidcUnderTest;
let mtlsOp: OidcUnderTest;
beforeAll(async () => {
  createDebug.enable('ninja-auth:*');
  createDebug.log = (...args: unknown[]) => void logLines.push(format(...args));
  jwtOp = await startOidcProvider([
    ...keyClients.map((c) => c.metadata),
    { ...codeClient(SECRET_JWT_CLIENT.id, 'client_secret_jwt'), client_secret: SECRET_JWT_CLIENT.secret },
  ]);
  mtlsOp = await startOidcProvider(Object.values(MTLS_CLIENTS), {}, { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert });
});
afterAll(async () => {
  createDebug.disable();
  await jwtOp?.close();
  await mtlsOp?.close();
});

/** Code exchange, three rotating refreshes, a revocation and a refused refresh, all through the router. */
async function fullFlow(op: OidcUnderTest, options: NinjaAuthOptions, clientId: string): Promise<ReceivedByProvider[]> {
  const host = hostApp(options);
  const { code, codeVerifier, redirectUri } = await op.authorize(clientId);
  const from = op.received.length;
  const exchanged = await request(host).post('/auth/token').type('form').send({ grant_type: 'authorization_code', code, code_verifier: codeVerifier, redirect_uri: redirectUri }).buffer(true).parse(asBytes);
  expect(exchanged.status, exchanged.body.toString()).toBe(200);
  expect(exchanged.body.equals(op.tokenReplies.at(-1)!)).toBe(true);
  const issued = JSON.parse(exchanged.body.toString());
  for (const token of [issued.access_token, issued.refresh_token, issued.id_token]) secretsSeen.add(token);

  let token = issued.refresh_token as string;
  for (let i = 0; i < 3; i++) {
    const refreshed = await request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).buffer(true).parse(asBytes);
    expect(refreshed.status, refreshed.body.toString()).toBe(200);
    expect(refreshed.body.equals(op.tokenReplies.at(-1)!)).toBe(true);
    const body = JSON.parse(refreshed.body.toString());
    expect(body.refresh_token).not.toBe(token);
    token = body.refresh_token;
    secretsSeen.add(body.access_token).add(token);
  }

  const revoked = await request(host).post('/auth/revoke_token').type('form').send({ token, token_type_hint: 'refresh_token' });
  expect(revoked.status).toBe(200);
  const refused = await request(host).post('/auth/refresh_token').type('form').send({ refresh_token: token }).buffer(true).parse(asBytes);
  expect(refused.status).toBe(400);
  expect(JSON.parse(refused.body.toString()).error).toBe('invalid_grant');

  const sent = op.received.slice(from);
  expect(sent.map((r) => r.path)).toEqual(['/token', '/token', '/token', '/token', '/token/revocation', '/token']);
  return sent;
}

function decodeJwt(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [header, payload] = jwt.split('.');
  const part = (text: string | undefined) => JSON.parse(Buffer.from(text ?? '', 'base64url').toString()) as Record<string, unknown>;
  return { header: part(header), payload: part(payload) };
}

/** Each request carried its own assertion, for the endpoint it went to, and no other credential. */
function expectAssertions(sent: ReceivedByProvider[], op: OidcUnderTest, clientId: string, expected: { alg: string; kid: string | undefined }): void {
  const jtis = new Set<unknown>();
  for (const seen of sent) {
    expect(seen.params['client_id']).toBe(clientId);
    expect(seen.params['client_assertion_type']).toBe(JWT_BEARER);
    expect(seen.params).not.toHaveProperty('client_secret');
    expect(seen.headers.authorization).toBeUndefined();
    const assertion = seen.params['client_assertion'] as string;
    secretsSeen.add(assertion);
    const { header, payload } = decodeJwt(assertion);
    expect(header['alg']).toBe(expected.alg);
    expect(header['kid']).toBe(expected.kid);
    expect(payload['iss']).toBe(clientId);
    expect(payload['sub']).toBe(clientId);
    expect(payload['aud']).toBe(seen.path === '/token' ? op.tokenUrl : op.revokeUrl);
    const lifetime = (payload['exp'] as number) - (payload['iat'] as number);
    expect(lifetime).toBeGreaterThan(0);
    expect(lifetime).toBeLessThanOrEqual(60);
    expect(typeof payload['jti']).toBe('string');
    jtis.add(payload['jti']);
  }
  expect(jtis.size).toBe(sent.length);
}

describe.each(keyClients)('private_key_jwt, $keyCase.name', (client) => {
  it(`${client.keyCase.alg} from a ${client.keyCase.form}: code exchange, rotating refreshes, revocation — an assertion per request`, async () => {
    const options: NinjaAuthOptions = {
      upstream: { tokenUrl: jwtOp.tokenUrl, revokeUrl: jwtOp.revokeUrl },
      clientId: client.id,
      clientAssertionKey: client.option,
      ...(client.keyCase.requestAlg === undefined ? {} : { clientAssertionAlg: client.keyCase.requestAlg }),
      ...(client.keyCase.kidOption === undefined ? {} : { clientAssertionKid: client.keyCase.kidOption }),
    };
    const sent = await fullFlow(jwtOp, options, client.id);
    expectAssertions(sent, jwtOp, client.id, { alg: client.keyCase.alg, kid: client.kid });
  });
});

describe('private_key_jwt, more', () => {
  const client = keyClients.find((c) => c.keyCase.name === 'ec-jwk')!;

  it('from the issuer alone: discovery picks private_key_jwt, the assertions name the discovered endpoints', async () => {
    const sent = await fullFlow(jwtOp, { upstream: { issuer: jwtOp.issuer }, clientId: client.id, clientAssertionKey: client.option }, client.id);
    expectAssertions(sent, jwtOp, client.id, { alg: 'ES256', kid: client.kid });
    expect(logLines.some((line) => line.includes('client authentication private_key_jwt'))).toBe(true);
  });

  it('a key the provider does not know is refused by the provider, its answer passed through', async () => {
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const host = hostApp({ upstream: { tokenUrl: jwtOp.tokenUrl }, clientId: client.id, clientAssertionKey: stranger, clientAssertionKid: client.kid! });
    const refused = await request(host).post('/auth/refresh_token').set('authorization', 'Bearer some-refresh-token').buffer(true).parse(asBytes);
    expect(refused.status).toBe(401);
    expect(refused.body.equals(jwtOp.tokenReplies.at(-1)!)).toBe(true);
    expect(JSON.parse(refused.body.toString()).error).toBe('invalid_client');
  });

  it('credentials the caller sends never reach the provider; the router’s own assertion does', async () => {
    const host = hostApp({ upstream: { tokenUrl: jwtOp.tokenUrl }, clientId: client.id, clientAssertionKey: client.option });
    const { code, codeVerifier, redirectUri } = await jwtOp.authorize(client.id);
    const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJwa2p3dC1lYy1qd2sifQ.';
    const from = jwtOp.received.length;
    const exchanged = await request(host)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'authorization_code', code, code_verifier: codeVerifier, redirect_uri: redirectUri, client_assertion: forged, client_assertion_type: 'urn:forged', client_secret: 'caller-secret' });
    expect(exchanged.status).toBe(200);
    const [seen] = jwtOp.received.slice(from);
    expect(seen!.params['client_assertion']).not.toBe(forged);
    expect(seen!.params['client_assertion_type']).toBe(JWT_BEARER);
    expect(seen!.params).not.toHaveProperty('client_secret');
    secretsSeen.add(seen!.params['client_assertion'] as string).add(exchanged.body.access_token).add(exchanged.body.refresh_token);
  });
});

describe('client_secret_jwt', () => {
  it('HS256 over the client secret: the secret itself never travels', async () => {
    const options: NinjaAuthOptions = {
      upstream: { tokenUrl: jwtOp.tokenUrl, revokeUrl: jwtOp.revokeUrl },
      clientId: SECRET_JWT_CLIENT.id,
      clientSecret: SECRET_JWT_CLIENT.secret,
      clientAuth: 'client_secret_jwt',
    };
    const sent = await fullFlow(jwtOp, options, SECRET_JWT_CLIENT.id);
    expectAssertions(sent, jwtOp, SECRET_JWT_CLIENT.id, { alg: 'HS256', kid: undefined });
    for (const seen of sent) expect(JSON.stringify(seen)).not.toContain(SECRET_JWT_CLIENT.secret);
  });

  it('a wrong secret is refused by the provider', async () => {
    const host = hostApp({ upstream: { tokenUrl: jwtOp.tokenUrl }, clientId: SECRET_JWT_CLIENT.id, clientSecret: 'not-the-secret-but-just-as-long-0123456789', clientAuth: 'client_secret_jwt' });
    const refused = await request(host).post('/auth/refresh_token').set('authorization', 'Bearer some-refresh-token');
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_client');
  });
});

describe('mutual TLS (RFC 8705) against an https provider', () => {
  const thumbprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

  /** Only client_id in the form, no other credential, the certificate on the mTLS listener's connection. */
  function expectCertificateAuth(sent: ReceivedByProvider[], clientId: string, cert: string): void {
    for (const seen of sent) {
      expect(seen.listener).toBe('mtls');
      expect(seen.certificateThumbprint).toBe(thumbprint(cert));
      expect(seen.params['client_id']).toBe(clientId);
      for (const name of ['client_secret', 'client_assertion', 'client_assertion_type']) expect(seen.params).not.toHaveProperty(name);
      expect(seen.headers.authorization).toBeUndefined();
    }
  }
  const pairOf = ({ cert, key }: { cert: string; key: string }) => ({ cert, key });
  const aliases = () => ({ tokenUrl: `${mtlsOp.mtlsOrigin}/token`, revokeUrl: `${mtlsOp.mtlsOrigin}/token/revocation` });

  it('tls_client_auth (the default with a certificate), CA-issued certificate, endpoints given', async () => {
    const options: NinjaAuthOptions = { upstream: aliases(), clientId: MTLS_CLIENTS.ca.client_id, tls: { cert: pki.client.cert, key: pki.client.key, ca: pki.ca.cert } };
    expectCertificateAuth(await fullFlow(mtlsOp, options, MTLS_CLIENTS.ca.client_id), MTLS_CLIENTS.ca.client_id, pki.client.cert);
  });

  it('self_signed_tls_client_auth, certificate and key as Buffers', async () => {
    const options: NinjaAuthOptions = {
      upstream: aliases(),
      clientId: MTLS_CLIENTS.selfSigned.client_id,
      clientAuth: 'self_signed_tls_client_auth',
      tls: { cert: Buffer.from(pki.selfSigned.cert), key: Buffer.from(pki.selfSigned.key), ca: [Buffer.from(pki.ca.cert)] },
    };
    expectCertificateAuth(await fullFlow(mtlsOp, options, MTLS_CLIENTS.selfSigned.client_id), MTLS_CLIENTS.selfSigned.client_id, pki.selfSigned.cert);
  });

  it('an encrypted key with its passphrase', async () => {
    const { encrypted } = pki;
    const options: NinjaAuthOptions = { upstream: aliases(), clientId: MTLS_CLIENTS.encrypted.client_id, tls: { cert: encrypted.cert, key: encrypted.key, passphrase: encrypted.passphrase, ca: pki.ca.cert } };
    expectCertificateAuth(await fullFlow(mtlsOp, options, MTLS_CLIENTS.encrypted.client_id), MTLS_CLIENTS.encrypted.client_id, encrypted.cert);
  });

  it.each([
    ['tls_client_auth', MTLS_CLIENTS.ca.client_id, pki.client, undefined],
    ['self_signed_tls_client_auth', MTLS_CLIENTS.selfSigned.client_id, pki.selfSigned, 'self_signed_tls_client_auth' as const],
  ])('%s from the issuer alone: the metadata’s mtls_endpoint_aliases are used', async (_method, clientId, pair, clientAuth) => {
    const options: NinjaAuthOptions = { upstream: { issuer: mtlsOp.issuer }, clientId, tls: { ...pairOf(pair), ca: pki.ca.cert }, ...(clientAuth ? { clientAuth } : {}) };
    expectCertificateAuth(await fullFlow(mtlsOp, options, clientId), clientId, pair.cert);
  });

  it('without the aliases, on an endpoint that asks for no certificate, the provider refuses the client', async () => {
    const host = hostApp({ upstream: { tokenUrl: mtlsOp.tokenUrl }, clientId: MTLS_CLIENTS.ca.client_id, tls: { ...pairOf(pki.client), ca: pki.ca.cert } });
    const refused = await request(host).post('/auth/refresh_token').set('authorization', 'Bearer some-refresh-token');
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ error: 'invalid_client' });
    expect(mtlsOp.received.at(-1)!.listener).toBe('main');
  });

  it.each([
    ['a certificate with another subject', MTLS_CLIENTS.ca.client_id, pki.stranger],
    ['a CA-issued certificate for a self-signed client', MTLS_CLIENTS.selfSigned.client_id, pki.client],
  ])('%s is refused by the provider', async (_name, clientId, pair) => {
    const host = hostApp({ upstream: aliases(), clientId, tls: { ...pairOf(pair), ca: pki.ca.cert }, ...(clientId === MTLS_CLIENTS.selfSigned.client_id ? { clientAuth: 'self_signed_tls_client_auth' as const } : {}) });
    const refused = await request(host).post('/auth/refresh_token').set('authorization', 'Bearer some-refresh-token');
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_client');
  });

  it('without tls.ca the provider’s private CA is not trusted: 502, not a silent downgrade', async () => {
    const host = hostApp({ upstream: aliases(), clientId: MTLS_CLIENTS.ca.client_id, tls: pairOf(pki.client) });
    const failed = await request(host).post('/auth/refresh_token').set('authorization', 'Bearer some-refresh-token');
    expect(failed.status).toBe(502);
    expect(failed.body.error).toBe('upstream_unavailable');
  });
});

describe('the debug output of all of the above', () => {
  it('never holds a private key, a certificate key, an assertion, a token or the client secret', () => {
    expect(logLines.length).toBeGreaterThan(50);
    expect(secretsSeen.size).toBeGreaterThan(100);
    const log = logLines.join('\n');
    for (const secret of secretsSeen) expect(log).not.toContain(secret);
    const keyBodies = [pki.client.key, pki.selfSigned.key, pki.encrypted.key, ...keyClients.map((c) => c.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)].map(
      (pem) => pem.split('\n')[1]!,
    );
    for (const body of keyBodies) expect(log).not.toContain(body);
    for (const client of keyClients) expect(log).not.toContain(client.privateKey.export({ format: 'jwk' }).d!);
    expect(log).not.toContain(SECRET_JWT_CLIENT.secret);
    expect(log).not.toContain('eyJ');
  });
});
