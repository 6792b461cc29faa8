import { sha256Hex } from './digest.js';

/** A short, stable name for a secret that is safe to log: `sha256:` and the first 8 hex digits of its digest. */
export function fingerprint(secret: string): string {
  return `sha256:${sha256Hex(secret).slice(0, 8)}`;
}

/** Replaces every occurrence of each secret in `text` by its fingerprint, however short the secret. */
export function redact(text: string, secrets: Iterable<string | undefined>): string {
  let clean = text;
  // Longest first, so that a secret inside another (a token inside its Basic header) cannot leave the rest behind.
  for (const secret of [...secrets].sort((a, b) => (b?.length ?? 0) - (a?.length ?? 0))) {
    if (secret !== undefined && secret !== '' && clean.includes(secret)) {
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
  // A name and a code are the thrower's too: redacted like the message.
  return redact(`${label}: ${error.message}`, secrets);
}
