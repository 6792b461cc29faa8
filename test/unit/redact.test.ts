import { describe, expect, it } from 'vitest';
import { describeError, fingerprint, redact } from '../../src/redact.js';

describe('fingerprints and redaction', () => {
  it('a fingerprint is short, stable and not the token', () => {
    expect(fingerprint('rt-abc')).toMatch(/^sha256:[0-9a-f]{8}$/);
    expect(fingerprint('rt-abc')).toBe(fingerprint('rt-abc'));
    expect(fingerprint('rt-abc')).not.toBe(fingerprint('rt-abd'));
  });

  it('every occurrence of every secret is replaced', () => {
    expect(redact('a=secret-1 b=secret-2 c=secret-1', ['secret-1', 'secret-2', undefined])).toBe(
      `a=${fingerprint('secret-1')} b=${fingerprint('secret-2')} c=${fingerprint('secret-1')}`,
    );
  });

  it('errors are described by name, code and a redacted message', () => {
    const error = Object.assign(new Error('failed with rt-xyz-123'), { code: 'E_HOOK' });
    expect(describeError(error, ['rt-xyz-123'])).toBe(`Error E_HOOK: failed with ${fingerprint('rt-xyz-123')}`);
    expect(describeError('plain rt-xyz-123', ['rt-xyz-123'])).toBe(`plain ${fingerprint('rt-xyz-123')}`);
  });
});
