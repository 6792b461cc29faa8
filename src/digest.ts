import crypto from 'node:crypto';

interface OneShotHash {
  (algorithm: string, data: string, outputEncoding: 'hex'): string;
  (algorithm: string, data: string, outputEncoding: 'buffer'): Buffer;
}

// `crypto.hash` (Node 20.12+) digests in one native call; `createHash` builds a stream object per digest and
// costs about three times as much. Both give the same bytes.
const oneShot = (crypto as { hash?: OneShotHash }).hash;

/** SHA-256 of a UTF-8 string, as 64 hex digits. */
export function sha256Hex(value: string): string {
  return oneShot === undefined ? crypto.createHash('sha256').update(value).digest('hex') : oneShot('sha256', value, 'hex');
}

/** SHA-256 of a UTF-8 string, as 32 bytes. */
export function sha256Bytes(value: string): Buffer {
  return oneShot === undefined ? crypto.createHash('sha256').update(value).digest() : oneShot('sha256', value, 'buffer');
}
