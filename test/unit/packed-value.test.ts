import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sealReply } from '../../src/rotation/reply-cipher.js';
import { packBytes, packValue, unpackValue } from '../../src/stores/packed-value.js';
import { answered } from '../../src/upstream.js';

const b64 = (bytes: number): string => randomBytes(bytes).toString('base64url');
const sealed = sealReply(answered(200, { 'content-type': 'application/json' }, Buffer.from(`{"refresh_token":"rt-next","id_token":"${'e'.repeat(900)}"}`)), 'rt-presented', 'request-key');

describe('packed values (how the memory store holds base64url)', () => {
  it('a sealed reply is held as bytes, three quarters of its text, and comes back identical', () => {
    const packed = packValue(sealed);
    expect(packed.bytesFrom).toBe(sealed.lastIndexOf('.') + 1);
    const tail = sealed.length - packed.bytesFrom;
    expect(packed.text.length).toBe(packed.bytesFrom + Buffer.byteLength(sealed.slice(packed.bytesFrom), 'base64url'));
    expect(packed.text.length).toBeLessThan(packed.bytesFrom + tail * 0.76);
    expect(unpackValue(packed)).toBe(sealed);
  });

  it.each([
    ['canonical base64url of every length mod 3', [b64(300), b64(301), b64(302)]],
    ['with a head of any latin1 text before the last dot', [`v9.${b64(200)}`, `a.b.c.${b64(150)}`, `é\u00ff.${b64(200)}`, `.${b64(200)}`]],
  ])('%s: packed, and back exactly', (_name, values) => {
    for (const value of values) {
      const packed = packValue(value);
      expect(packed.bytesFrom).toBeGreaterThanOrEqual(0);
      expect(unpackValue(packed)).toBe(value);
    }
  });

  it.each([
    ['standard base64 characters', `${b64(150)}+/${b64(30)}`],
    ['padding', `${b64(151)}==`],
    ['stray low bits in the last character', `${'A'.repeat(200)}B`],
    ['whitespace', `${b64(100)} ${b64(100)}`],
    ['characters outside the alphabet', `${b64(100)}!${b64(100)}`],
    ['a tail too short to be worth it (a fingerprint)', `v2.${'ab'.repeat(32)}`],
    ['a head with characters beyond latin1', `☃.${b64(200)}`],
    ['text beyond latin1 in the tail', `${b64(200)}☃`],
    ['empty', ''],
  ])('%s: held as it is, and back exactly', (_name, value) => {
    const packed = packValue(value);
    expect(packed).toEqual({ text: value, bytesFrom: -1 });
    expect(unpackValue(packed)).toBe(value);
  });

  it.each([
    ['a sealed reply’s head', 'v2.abc.def.'],
    ['no head', ''],
    ['a head beyond latin1 (held as text)', '☃.'],
  ])('bytes with %s: held as given, and back as head + base64url', (_name, head) => {
    for (const length of [0, 1, 2, 3, 1_390]) {
      const bytes = randomBytes(length);
      const packed = packBytes(head, bytes);
      expect(unpackValue(packed)).toBe(head + bytes.toString('base64url'));
      if (head !== '☃.') expect(packed.text.length).toBe(head.length + length);
    }
  });
});

