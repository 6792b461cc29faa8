// How the memory store holds a value: most of what the guard stores is base64url (a sealed reply is
// `v2.<iv>.<tag>.<ciphertext>`, a fingerprint 64 hex digits), and that text takes 4 characters for every 3 bytes.
// A value whose tail is long, canonical base64url is held as its head followed by the tail's bytes, one character
// per byte, in one flat string: three quarters of the size, on the V8 heap, with no buffer objects per entry.

/** A value as the memory store holds it. */
export interface PackedValue {
  /** The value itself, or its head followed by its tail's bytes as latin1 characters. */
  readonly text: string;
  /** Where the bytes start in `text`, or -1 when `text` is the value itself. */
  readonly bytesFrom: number;
}

/** Shorter tails are held as they are: a 64-digit fingerprint is often the very string a key shares, and packing it would copy it. */
export const MIN_PACKED_LENGTH = 128;
const NOT_LATIN1 = /[^\u0000-\u00ff]/;

/**
 * The value, packed when the part after its last `.` (all of it, without one) is base64url that decodes and
 * encodes back to exactly the same characters; anything else is held as it is. {@link unpackValue} returns the
 * identical string either way.
 */
export function packValue(value: string): PackedValue {
  if (value.length < MIN_PACKED_LENGTH) return { text: value, bytesFrom: -1 };
  const from = afterLastDot(value);
  const tailLength = value.length - from;
  if (tailLength < MIN_PACKED_LENGTH || (from > 0 && NOT_LATIN1.test(value.slice(0, from)))) return { text: value, bytesFrom: -1 };
  const tail = value.slice(from);
  const packed = Buffer.allocUnsafe(from + Math.ceil((tailLength * 3) / 4));
  packed.write(value.slice(0, from), 0, 'latin1');
  const end = from + packed.write(tail, from, 'base64url');
  // Node's decoder skips characters outside the alphabet, takes '+' and '/' too and ignores stray low bits:
  // only a tail that comes back unchanged is held as bytes.
  if (packed.toString('base64url', from, end) !== tail) return { text: value, bytesFrom: -1 };
  return { text: packed.toString('latin1', 0, end), bytesFrom: from };
}

/** Searching forwards: lastIndexOf walks a long tail one character at a time, a sixth as fast here. */
function afterLastDot(value: string): number {
  let last = -1;
  for (let next = value.indexOf('.'); next >= 0; next = value.indexOf('.', next + 1)) last = next;
  return last + 1;
}

/**
 * The value `head` followed by `bytes` in base64url, packed without encoding the bytes first: for a caller that has
 * them (the guard, sealing a reply). A head beyond latin1 is held as text, like {@link packValue} does.
 */
export function packBytes(head: string, bytes: Uint8Array): PackedValue {
  if (NOT_LATIN1.test(head)) return { text: head + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url'), bytesFrom: -1 };
  const packed = Buffer.allocUnsafe(head.length + bytes.byteLength);
  packed.write(head, 0, 'latin1');
  packed.set(bytes, head.length);
  return { text: packed.toString('latin1'), bytesFrom: head.length };
}

export function unpackValue(packed: PackedValue): string {
  const { text, bytesFrom } = packed;
  if (bytesFrom < 0) return text;
  return text.slice(0, bytesFrom) + Buffer.from(text, 'latin1').toString('base64url', bytesFrom);
}
