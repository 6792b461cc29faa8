import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { sha256Bytes } from '../digest.js';
import { answered, type UpstreamAnswer, type UpstreamOutcome } from '../upstream.js';
import { failure } from '../upstream-failure.js';

// A stored reply holds tokens, so it is sealed with AES-256-GCM under a key derived from the refresh token the
// caller presented: a dump of the store opens nothing without that token.

const VERSION = 'v2';
const SALT = `ninja-auth/reply/${VERSION}`;

/** The sealed plaintext: `[status, headers]` as JSON, a newline (JSON escapes its own), then the body bytes. */
type ReplyHead = readonly [number, Readonly<Record<string, string | string[]>>];
const NEWLINE = 0x0a;

/**
 * A 256-bit key per token and request: SHA-256 over a fixed label, the request key and the refresh token. The
 * token is a high-entropy secret, so one hash is enough to derive from it, and costs a sixth of an HMAC here.
 */
function keyFor(refreshToken: string, requestKey: string): Buffer {
  return sha256Bytes(`${SALT}:${requestKey}:${refreshToken}`);
}

// IVs come from a pool filled 4 KiB at a time: one getrandom() per 341 replies instead of one each.
const ivPool = Buffer.alloc(4092);
let ivOffset = ivPool.length;

/** The next 12 bytes of the pool: a view, which the cipher copies and the head encodes before the pool moves on. */
function nextIv(): Buffer {
  if (ivOffset === ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  ivOffset += 12;
  return ivPool.subarray(ivOffset - 12, ivOffset);
}

/**
 * A sealed reply as the store keeps it: the text `v2.<iv>.<tag>.<ciphertext>`, all base64url, is `head` followed
 * by the ciphertext's bytes in base64url. A store that holds bytes takes them as they are (`MemoryStore.setBytes`).
 */
export class SealedReply {
  #text: string | undefined;

  constructor(
    readonly head: string,
    readonly bytes: Buffer,
  ) {}

  get text(): string {
    this.#text ??= this.head + this.bytes.toString('base64url');
    return this.#text;
  }
}

export function sealReplyValue(answer: UpstreamAnswer, refreshToken: string, requestKey: string): SealedReply {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', keyFor(refreshToken, requestKey), iv);
  const head: ReplyHead = [answer.status, answer.headers];
  const headText = `${JSON.stringify(head)}\n`;
  const headLength = Buffer.byteLength(headText);
  // One plaintext, one update: a GCM update costs a native call and a buffer of its own, and final() adds nothing.
  const plain = Buffer.allocUnsafe(headLength + answer.body.length);
  plain.write(headText, 0, 'utf8');
  answer.body.copy(plain, headLength);
  const sealed = cipher.update(plain);
  cipher.final();
  // allocUnsafe takes small buffers from Node's shared pool: no token stays behind in it.
  plain.fill(0);
  return new SealedReply(`${VERSION}.${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.`, sealed);
}

export function sealReply(answer: UpstreamAnswer, refreshToken: string, requestKey: string): string {
  return sealReplyValue(answer, refreshToken, requestKey).text;
}

/** The reply, or `undefined` when the value was not sealed for this token and request, or was tampered with. */
export function openReply(value: string, refreshToken: string, requestKey: string): UpstreamAnswer | undefined {
  const [version, iv, tag, sealed] = value.split('.');
  if (version !== VERSION || iv === undefined || tag === undefined || sealed === undefined) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyFor(refreshToken, requestKey), Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const plain = Buffer.concat([decipher.update(Buffer.from(sealed, 'base64url')), decipher.final()]);
    const split = plain.indexOf(NEWLINE);
    const [status, headers] = JSON.parse(plain.subarray(0, split).toString('utf8')) as ReplyHead;
    return answered(status, headers, plain.subarray(split + 1));
  } catch {
    return undefined;
  }
}

/** A failure holds no token: only the router's own status and a short cause code, so it is kept as it is. */
const FAILED = 'failed';

/** Any outcome, for the callers who waited on another instance's upstream call. */
export function sealOutcome(outcome: UpstreamOutcome, refreshToken: string, requestKey: string): string {
  if (outcome.kind === 'answered') return sealReply(outcome, refreshToken, requestKey);
  return [FAILED, String(outcome.refusal.status), Buffer.from(outcome.cause).toString('base64url')].join('.');
}

export function openOutcome(value: string, refreshToken: string, requestKey: string): UpstreamOutcome | undefined {
  const [kind, status, cause] = value.split('.');
  if (kind !== FAILED) return openReply(value, refreshToken, requestKey);
  if ((status !== '502' && status !== '504') || cause === undefined) return undefined;
  return failure(status === '504' ? 504 : 502, Buffer.from(cause, 'base64url').toString('utf8'));
}
