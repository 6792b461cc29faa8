import { sha256Hex } from './digest.js';

/** A short, stable name for a secret that is safe to log: `sha256:` and the first 8 hex digits of its digest. */
export function fingerprint(secret: string): string {
  return `sha256:${sha256Hex(secret).slice(0, 8)}`;
}

/** Replaces every occurrence of each secret in `text` by its fingerprint. */
export function redact(text: string, secrets: Iterable<string | undefined>): string {
  let clean = text;
  for (const secret of secrets) {
    if (secret !== undefined && secret.length >= 4 && clean.includes(secret)) {
      clean = clean.split(secret).join(fingerprint(secret));
    }
  }
  return clean;
}

/** What is safe to log of an error thrown by code we do not control: its name, code and a redacted message. */
export function describeError(error: unknown, secrets: Iterable<string | undefined>): string {
  if (!(error instanceof Error)) return redact(String(error), secrets);
  const code = (error as { code?: unknown }).code;
  const label = typeof code === 'string' ? `${error.name} ${code}` : error.name;
  return `${label}: ${redact(error.message, secrets)}`;
}
