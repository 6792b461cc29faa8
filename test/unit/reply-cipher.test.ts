import { describe, expect, it } from 'vitest';
import { openReply, sealReply } from '../../src/rotation/reply-cipher.js';
import { answered, type UpstreamAnswer } from '../../src/upstream.js';

const answer: UpstreamAnswer = answered(
  200,
  { 'content-type': 'application/json', 'x-multi': ['a', 'b\nc'] },
  Buffer.concat([Buffer.from('{"refresh_token":"rt-next",\n"x":1}\n'), Buffer.from([0, 255, 10, 13])]),
);

describe('sealed replies', () => {
  it('open to the same status, headers and bytes with the same token and request', () => {
    const sealed = sealReply(answer, 'rt-presented', 'request-key');
    const opened = openReply(sealed, 'rt-presented', 'request-key')!;
    expect(opened.status).toBe(200);
    expect(opened.headers).toEqual(answer.headers);
    expect(opened.body.equals(answer.body)).toBe(true);
  });

  it('hold nothing readable, and open with nothing else', () => {
    const sealed = sealReply(answer, 'rt-presented', 'request-key');
    expect(sealed).not.toContain('rt-next');
    expect(Buffer.from(sealed.split('.')[3]!, 'base64url').toString('latin1')).not.toContain('rt-next');
    expect(openReply(sealed, 'rt-other', 'request-key')).toBeUndefined();
    expect(openReply(sealed, 'rt-presented', 'other-request')).toBeUndefined();
    const tampered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
    expect(openReply(tampered, 'rt-presented', 'request-key')).toBeUndefined();
    expect(openReply('garbage', 'rt-presented', 'request-key')).toBeUndefined();
    // A reply sealed by an older version does not open: it is asked upstream again, never misread.
    expect(openReply(sealed.replace(/^v2\./, 'v1.'), 'rt-presented', 'request-key')).toBeUndefined();
  });

  it('never reuse an IV', () => {
    const ivs = new Set(Array.from({ length: 1000 }, () => sealReply(answer, 'rt', 'k').split('.')[1]));
    expect(ivs.size).toBe(1000);
  });
});
