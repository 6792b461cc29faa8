import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { describeError, fingerprint, redact } from '../../src/redact.js';

/** The documented form, computed here rather than with the code under test. */
const documented = (secret: string): string => `sha256:${createHash('sha256').update(secret, 'utf8').digest('hex').slice(0, 8)}`;

describe('fingerprints and redaction', () => {
  it('a fingerprint is the documented form: sha256: and the first 8 hex digits of SHA-256 over UTF-8', () => {
    // Known digests, not computed with the code under test (FIPS 180-2's "abc", the empty string, U+00E9 as UTF-8).
    expect(fingerprint('abc')).toBe('sha256:ba7816bf');
    expect(fingerprint('')).toBe('sha256:e3b0c442');
    expect(fingerprint('\u00e9')).toBe('sha256:4a99557e');
  });

  it('a fingerprint is short, stable and not the token', () => {
    expect(fingerprint('rt-abc')).toMatch(/^sha256:[0-9a-f]{8}$/);
    expect(fingerprint('rt-abc')).toBe(fingerprint('rt-abc'));
    expect(fingerprint('rt-abc')).not.toBe(fingerprint('rt-abd'));
  });

  it('every occurrence of every secret is replaced', () => {
    expect(redact('a=secret-1 b=secret-2 c=secret-1', ['secret-1', 'secret-2', undefined])).toBe(
      `a=${documented('secret-1')} b=${documented('secret-2')} c=${documented('secret-1')}`,
    );
  });

  it('however short a secret is, it is replaced; one inside another leaves nothing of either', () => {
    expect(redact('pin 42 and pw xyz', ['42', 'xyz'])).toBe(`pin ${documented('42')} and pw ${documented('xyz')}`);
    expect(redact('Basic c2VjcmV0 then c2VjcmV0', ['c2VjcmV0', 'Basic c2VjcmV0'])).toBe(`${documented('Basic c2VjcmV0')} then ${documented('c2VjcmV0')}`);
  });

  it('a secret in an error’s name or code is redacted too', () => {
    const error = Object.assign(new Error('failed'), { name: 'Err-rt-in-name-1', code: 'E-rt-in-code-2' });
    expect(describeError(error, ['rt-in-name-1', 'rt-in-code-2'])).toBe(`Err-${documented('rt-in-name-1')} E-${documented('rt-in-code-2')}: failed`);
  });

  it('errors are described by name, code and a redacted message', () => {
    const error = Object.assign(new Error('failed with rt-xyz-123'), { code: 'E_HOOK' });
    expect(describeError(error, ['rt-xyz-123'])).toBe(`Error E_HOOK: failed with ${documented('rt-xyz-123')}`);
    expect(describeError('plain rt-xyz-123', ['rt-xyz-123'])).toBe(`plain ${documented('rt-xyz-123')}`);
  });
});
