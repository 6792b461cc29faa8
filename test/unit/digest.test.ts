import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256Bytes, sha256Hex } from '../../src/digest.js';

describe('digests', () => {
  it.each(['', 'rt-1234', 'sé:cret/+ 🔑', 'x'.repeat(10_000)])('match createHash over the UTF-8 bytes of %j', (value) => {
    const expected = createHash('sha256').update(value, 'utf8').digest();
    expect(sha256Hex(value)).toBe(expected.toString('hex'));
    expect(sha256Bytes(value).equals(expected)).toBe(true);
  });
});
