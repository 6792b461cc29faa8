import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { NinjaAuthConfigError } from './errors.js';
import type { NinjaAuthTlsOptions, PemInput } from './types.js';

/** The `tls` option, checked: what the default client's https agent presents and trusts. */
export interface TlsMaterial {
  readonly cert: PemInput;
  readonly key: PemInput;
  readonly passphrase: string | undefined;
  /** The system's CAs and the configured ones, or `undefined` for Node's default trust. */
  readonly ca: readonly PemInput[] | undefined;
}

export const TLS_ENV = { cert: 'NINJA_AUTH_TLS_CERT', key: 'NINJA_AUTH_TLS_KEY', ca: 'NINJA_AUTH_TLS_CA' } as const;

type Env = Readonly<Record<string, string | undefined>>;

/** A PEM or JSON from the environment; literal `\n` escapes, as .env files often hold them, become newlines. */
export function envPem(env: Env, envVar: string): string | undefined {
  const value = env[envVar];
  if (value === undefined || value.trim() === '') return undefined;
  return value.includes('\n') ? value : value.replaceAll('\\n', '\n');
}

/** Every key of the `tls` option: the compiler rejects a list that misses one. */
const TLS_KEYS: { readonly [K in keyof Required<NinjaAuthTlsOptions>]: true } = { cert: true, key: true, ca: true, passphrase: true };
const TLS_NAMES = Object.keys(TLS_KEYS);

/**
 * Reads `tls`, or else the NINJA_AUTH_TLS_* variables, and proves the pair usable by building a TLS context
 * from it, so that a key that does not match its certificate fails at `ninjaAuth()`. Messages never quote PEM.
 */
export function readTlsOptions(value: unknown, env: Env): TlsMaterial | undefined {
  const fromEnv = value === undefined;
  const given = fromEnv ? { cert: envPem(env, TLS_ENV.cert), key: envPem(env, TLS_ENV.key), ca: envPem(env, TLS_ENV.ca) } : value;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new NinjaAuthConfigError('tls', 'must be an object, e.g. { cert: fs.readFileSync("client.crt"), key: fs.readFileSync("client.key") }');
  }
  const { cert, key, ca, passphrase } = given as Record<string, unknown>;
  if (fromEnv && cert === undefined && key === undefined && ca === undefined) return undefined;
  const extra = Object.keys(given).find((name) => !TLS_NAMES.includes(name));
  if (extra !== undefined) throw new NinjaAuthConfigError(`tls.${extra}`, `is not a ninja-auth option (a typo?): known are ${TLS_NAMES.join(', ')}`);
  const pem = (field: 'cert' | 'key', input: unknown): PemInput => {
    if (input === undefined) throw new NinjaAuthConfigError(`tls.${field}`, `is required: tls needs both cert and key (PEM)`, TLS_ENV[field]);
    if (!isPem(input)) throw new NinjaAuthConfigError(`tls.${field}`, 'must be PEM, as a string or a Buffer', TLS_ENV[field]);
    return input;
  };
  const material = {
    cert: pem('cert', cert),
    key: pem('key', key),
    passphrase: readPassphrase(passphrase),
    ca: readCa(ca),
  };
  try {
    tls.createSecureContext({ cert: material.cert, key: material.key, passphrase: material.passphrase });
  } catch {
    throw new NinjaAuthConfigError('tls.key', 'cannot be used with tls.cert: not a PEM certificate and its private key, the key does not match the certificate, or tls.passphrase is wrong', TLS_ENV.key);
  }
  return { ...material, ca: material.ca === undefined ? undefined : [...tls.rootCertificates, ...material.ca] };
}

function readPassphrase(value: unknown): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  throw new NinjaAuthConfigError('tls.passphrase', 'must be a string');
}

function readCa(value: unknown): PemInput[] | undefined {
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0 || !list.every(isPem)) throw new NinjaAuthConfigError('tls.ca', 'must be PEM (a string or a Buffer) or a list of them', TLS_ENV.ca);
  try {
    for (const pem of list) new X509Certificate(pem);
  } catch {
    throw new NinjaAuthConfigError('tls.ca', 'is not a readable PEM certificate', TLS_ENV.ca);
  }
  return list;
}

const isPem = (value: unknown): value is PemInput => (typeof value === 'string' && value !== '') || (Buffer.isBuffer(value) && value.length > 0);
