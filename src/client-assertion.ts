import { createPrivateKey, createSecretKey, type JsonWebKey, KeyObject, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { NinjaAuthConfigError } from './errors.js';

/** What signs the client assertions: a private key or the client secret, its JWS algorithm and `kid`. */
export interface AssertionKey {
  readonly key: KeyObject;
  readonly alg: string;
  readonly kid: string | undefined;
}

export const ASSERTION_KEY_ENV = 'NINJA_AUTH_CLIENT_ASSERTION_KEY';

/** RFC 7523 §3: the assertion lives at most this long. */
export const ASSERTION_LIFETIME_S = 60;

const HMAC_ALGS = ['HS256', 'HS384', 'HS512'];
const RSA_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const PSS_ALGS = ['PS256', 'PS384', 'PS512'];
/** OpenSSL's curve names, as `asymmetricKeyDetails.namedCurve` gives them. */
const EC_ALG_BY_CURVE: Readonly<Record<string, string>> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const MIN_RSA_BITS = 2048;

const problem = (message: string, option = 'clientAssertionKey'): NinjaAuthConfigError =>
  new NinjaAuthConfigError(option, message, option === 'clientAssertionKey' ? ASSERTION_KEY_ENV : undefined);

/**
 * Reads `clientAssertionKey` (a PEM, a JWK or its JSON, or a `KeyObject`) and checks that it is private and that
 * `alg` fits it. node:crypto reads it, synchronously, so that a bad key fails at `ninjaAuth()`. Messages name the
 * problem, never the key.
 */
export function readAssertionKey(value: unknown, alg: string | undefined, kid: string | undefined): AssertionKey {
  const { key, jwkKid } = privateKeyOf(value);
  const algs = algorithmsFor(key);
  const chosen = alg ?? algs[0]!;
  if (!algs.includes(chosen)) {
    throw problem(`is "${chosen}", which does not fit the key (${describeKey(key)}): use ${algs.map((a) => `"${a}"`).join(' or ')}`, 'clientAssertionAlg');
  }
  return { key, alg: chosen, kid: kid ?? jwkKid };
}

/** `client_secret_jwt`: HMAC over the client secret's UTF-8 bytes. */
export function secretAssertionKey(secret: string, alg: string | undefined, kid: string | undefined): AssertionKey {
  const chosen = alg ?? 'HS256';
  if (!HMAC_ALGS.includes(chosen)) {
    throw problem(`is "${chosen}", but client_secret_jwt signs with the client secret: use ${HMAC_ALGS.map((a) => `"${a}"`).join(', ')}`, 'clientAssertionAlg');
  }
  return { key: createSecretKey(Buffer.from(secret, 'utf8')), alg: chosen, kid };
}

/**
 * A fresh assertion for every call (RFC 7523 §3, OIDC Core §9): `iss` = `sub` = the client id, `aud` = the
 * endpoint called, `exp` 60 s after `iat`, a random `jti`. Never cached: each upstream request signs its own.
 */
export function assertionSigner(signing: AssertionKey, clientId: string): (audience: string) => Promise<string> {
  const header = signing.kid === undefined ? { alg: signing.alg } : { alg: signing.alg, kid: signing.kid };
  return (audience) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader(header)
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(audience)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + ASSERTION_LIFETIME_S)
      .sign(signing.key);
  };
}

function privateKeyOf(value: unknown): { key: KeyObject; jwkKid: string | undefined } {
  if (value instanceof KeyObject) {
    if (value.type === 'public') throw problem('is a public key: the router signs with the private key (keep the public one at the provider)');
    if (value.type === 'secret') throw problem('is a secret key: for HMAC assertions use clientSecret with clientAuth "client_secret_jwt"');
    return { key: value, jwkKid: undefined };
  }
  if (typeof value === 'string') return value.trimStart().startsWith('{') ? fromJwk(parseJwkJson(value)) : fromPem(value);
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return fromJwk(value as JsonWebKey);
  throw problem('must be a PEM string, a JWK object or a KeyObject');
}

function parseJwkJson(text: string): JsonWebKey {
  try {
    return JSON.parse(text) as JsonWebKey;
  } catch {
    throw problem('looks like JSON but does not parse as a JWK');
  }
}

function fromJwk(jwk: JsonWebKey): { key: KeyObject; jwkKid: string | undefined } {
  if (jwk.kty === 'oct') throw problem('is a symmetric JWK: for HMAC assertions use clientSecret with clientAuth "client_secret_jwt"');
  if (typeof jwk.d !== 'string') throw problem('is a public JWK (it has no "d"): the router signs with the private key');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: jwk, format: 'jwk' });
  } catch {
    throw problem('is not a usable private JWK (RSA, EC P-256/P-384/P-521 or Ed25519)');
  }
  return { key, jwkKid: typeof jwk.kid === 'string' && jwk.kid !== '' ? jwk.kid : undefined };
}

const PUBLIC_PEM = /-----BEGIN (?:RSA |EC )?PUBLIC KEY-----|-----BEGIN CERTIFICATE-----/;
const ENCRYPTED_PEM = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/;

function fromPem(pem: string): { key: KeyObject; jwkKid: undefined } {
  if (!pem.includes('PRIVATE KEY-----') && PUBLIC_PEM.test(pem)) throw problem('is a public key or a certificate: the router signs with the private key');
  if (ENCRYPTED_PEM.test(pem)) throw problem('is an encrypted PEM: pass crypto.createPrivateKey({ key, passphrase }) instead');
  try {
    return { key: createPrivateKey(pem), jwkKid: undefined };
  } catch {
    throw problem('is not a readable private key: expected a PEM ("-----BEGIN PRIVATE KEY-----", PKCS#1 or SEC1), a JWK or a KeyObject');
  }
}

function algorithmsFor(key: KeyObject): string[] {
  const details = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      if ((details?.modulusLength ?? 0) < MIN_RSA_BITS) throw problem(`is an RSA key of ${details?.modulusLength ?? '?'} bits: at least ${MIN_RSA_BITS} are needed`);
      return key.asymmetricKeyType === 'rsa' ? RSA_ALGS : PSS_ALGS;
    case 'ec': {
      const alg = EC_ALG_BY_CURVE[details?.namedCurve ?? ''];
      if (alg === undefined) throw problem(`is an EC key on ${details?.namedCurve ?? 'an unknown curve'}: use P-256, P-384 or P-521`);
      return [alg];
    }
    case 'ed25519':
      return ['EdDSA'];
    default:
      throw problem(`is a ${key.asymmetricKeyType ?? 'unknown'} key: use RSA, EC (P-256, P-384, P-521) or Ed25519`);
  }
}

function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') return `EC ${details?.namedCurve ?? ''}`.trim();
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') return `${key.asymmetricKeyType.toUpperCase()} ${details?.modulusLength ?? ''} bits`;
  return key.asymmetricKeyType ?? 'unknown';
}
