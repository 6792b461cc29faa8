import { describe, expect, it } from 'vitest';
import { keyText, splitKey, tagged } from '../../src/stores/store-key.js';

describe('store keys as a hash tag and the rest', () => {
  it('as text, the tag goes where the rest holds {}; split again, the same tag and rest come back', () => {
    const key = tagged('abc123', 'reply:{}:req');
    expect(keyText(key)).toBe('reply:{abc123}:req');
    expect(splitKey(keyText(key))).toEqual(key);
    expect(keyText(tagged('t', 'sealed:{}'))).toBe('sealed:{t}');
    expect(keyText('plain-key')).toBe('plain-key');
  });

  it('a key given as text has the tag Redis Cluster hashes: between the first { and the first } after it', () => {
    expect(splitKey('pred:{t}')).toEqual({ tag: 't', rest: 'pred:{}' });
    expect(splitKey('a{b{c}d')).toEqual({ tag: 'b{c', rest: 'a{}d' });
    expect(splitKey('x{t}y{u}')).toEqual({ tag: 't', rest: 'x{}y{u}' });
    expect(keyText(splitKey('a{b{c}d'))).toBe('a{b{c}d');
  });

  it('a key without a tag (none, or an empty first one) is its own, with a rest no tagged key has', () => {
    for (const key of ['plain', 'a{}b{t}', 'open{only', 'close}only{']) {
      expect(splitKey(key)).toEqual({ tag: key, rest: '' });
      expect(keyText(splitKey(key))).toBe(key);
    }
    expect(splitKey('{t}').rest).not.toBe(splitKey('t').rest);
  });
});
