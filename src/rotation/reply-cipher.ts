import { createCipheriv, createDecipheriv, createHmac, randomFillSync } from 'node:crypto';
import type { UpstreamAnswer } from '../upstream.js';

// A stored reply holds tokens, so it is sealed with AES-256-GCM under a key derived from the refresh token the
// caller presented: a dump of the store opens nothing without that token.

const SALT = 'ninja-auth/reply/v1';

/** The sealed plaintext: `[status, headers]` as JSON, a newline (JSON escapes its own), then the body bytes. */
type ReplyHead = [number, Record<string, string | string[]>];
const NEWLINE = 0x0a;

/** HMAC-SHA-256 keyed with the refresh token: a 256-bit key per token and request, cheap enough for every refresh. */
function keyFor(refreshToken: string, requestKey: string): Buffer {
  return createHmac('sha256', refreshToken).update(`${SALT}:${requestKey}`).digest();
}

// IVs come from a pool filled 4 KiB at a time: one getrandom() per 341 replies instead of one each.
const ivPool = Buffer.alloc(4092);
let ivOffset = ivPool.length;

function nextIv(): Buffer {
  if (ivOffset === ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  ivOffset += 12;
  return Buffer.from(ivPool.subarray(ivOffset - 12, ivOffset));
}

export function sealReply(answer: UpstreamAnswer, refreshToken: string, requestKey: string): string {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', keyFor(refreshToken, requestKey), iv);
  const head: ReplyHead = [answer.status, { ...answer.headers }];
  const sealed = Buffer.concat([cipher.update(`${JSON.stringify(head)}\n`, 'utf8'), cipher.update(answer.body), cipher.final()]);
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), sealed.toString('base64url')].join('.');
}

/** The reply, or `undefined` when the value was not sealed for this token and request, or was tampered with. */
export function openReply(value: string, refreshToken: string, requestKey: string): UpstreamAnswer | undefined {
  const [version, iv, tag, sealed] = value.split('.');
  if (version !== 'v1' || iv === undefined || tag === undefined || sealed === undefined) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyFor(refreshToken, requestKey), Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const plain = Buffer.concat([decipher.update(Buffer.from(sealed, 'base64url')), decipher.final()]);
    const split = plain.indexOf(NEWLINE);
    const [status, headers] = JSON.parse(plain.subarray(0, split).toString('utf8')) as ReplyHead;
    return { kind: 'answered', status, headers, body: plain.subarray(split + 1) };
  } catch {
    return undefined;
  }
}
