import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

/** A test PKI, made once per process with the openssl CLI (part of the Debian base image; no network). */
export interface TestPki {
  /** The CA that signs the server and the CA-issued client certificate. */
  readonly ca: KeyPair;
  /** The provider's certificate, for 127.0.0.1. */
  readonly server: KeyPair;
  /** A client certificate issued by the CA: `tls_client_auth`. */
  readonly client: KeyPair & { readonly subjectDn: string };
  /** A self-signed client certificate: `self_signed_tls_client_auth`. */
  readonly selfSigned: KeyPair;
  /** Another CA-issued client certificate, for a client the provider does not know by it. */
  readonly stranger: KeyPair;
  /** A client certificate and an encrypted key, with its passphrase. */
  readonly encrypted: KeyPair & { readonly passphrase: string };
}

let pki: TestPki | undefined;

export function testPki(): TestPki {
  pki ??= makePki();
  return pki;
}

export const CLIENT_SUBJECT_DN = 'CN=ninja-auth-mtls-client,O=ninja-auth tests';

function makePki(): TestPki {
  if (spawnSync('openssl', ['version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('the mTLS tests make their certificates with the openssl CLI: install it (apt-get install openssl)');
  }
  const dir = mkdtempSync(join(tmpdir(), 'ninja-auth-pki-'));
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
  const ecKey = (name: string): void => openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name);
  try {
    ecKey('ca.key');
    openssl('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ninja-auth test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
    const issue = (name: string, subject: string, extensions: string): void => {
      ecKey(`${name}.key`);
      openssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
      writeFileSync(join(dir, `${name}.ext`), extensions);
      openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
    };
    issue('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    issue('client', '/O=ninja-auth tests/CN=ninja-auth-mtls-client', 'extendedKeyUsage=clientAuth\n');
    issue('stranger', '/CN=someone-else', 'extendedKeyUsage=clientAuth\n');
    issue('encrypted', '/CN=ninja-auth-encrypted-key', 'extendedKeyUsage=clientAuth\n');
    openssl('pkey', '-in', 'encrypted.key', '-aes-256-cbc', '-passout', 'pass:test-passphrase', '-out', 'encrypted-enc.key');
    ecKey('self.key');
    openssl('req', '-x509', '-new', '-key', 'self.key', '-out', 'self.crt', '-days', '2', '-subj', '/CN=ninja-auth-self-signed', '-addext', 'extendedKeyUsage=clientAuth');
    const pair = (name: string): KeyPair => ({ cert: read(`${name}.crt`), key: read(`${name}.key`) });
    return {
      ca: pair('ca'),
      server: pair('server'),
      client: { ...pair('client'), subjectDn: CLIENT_SUBJECT_DN },
      selfSigned: pair('self'),
      stranger: pair('stranger'),
      encrypted: { cert: read('encrypted.crt'), key: read('encrypted-enc.key'), passphrase: 'test-passphrase' },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
