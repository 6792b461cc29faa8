import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openOutcome, openReply, sealOutcome, sealReply, sealReplyValue } from '../../src/rotation/reply-cipher.js';
import { answered, type UpstreamAnswer } from '../../src/upstream.js';
import { failure } from '../../src/upstream-failure.js';

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

  it('as head and bytes: the text is the head then the bytes in base64url, in the v2 layout, and opens the same', () => {
    const sealed = sealReplyValue(answer, 'rt-presented', 'request-key');
    expect(sealed.text).toBe(sealed.head + sealed.bytes.toString('base64url'));
    expect(sealed.text.split('.')).toHaveLength(4);
    expect(sealed.head).toMatch(/^v2\.[\w-]{16}\.[\w-]{22}\.$/);
    expect(openReply(sealed.text, 'rt-presented', 'request-key')!.body.equals(answer.body)).toBe(true);
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
  });

  it('a reply sealed by 0.1.0 (v1: HMAC-derived key) never opens, under its own label or relabelled v2', () => {
    const v1 = sealedByVersion010(answer, 'rt-presented', 'request-key');
    // It is a real v1 value: 0.1.0's own opening recovers the reply from it.
    expect(openedByVersion010(v1, 'rt-presented', 'request-key')!.equals(answer.body)).toBe(true);
    expect(openReply(v1, 'rt-presented', 'request-key')).toBeUndefined();
    expect(openReply(v1.replace(/^v1\./, 'v2.'), 'rt-presented', 'request-key')).toBeUndefined();
  });

  it('never reuse an IV', () => {
    const ivs = new Set(Array.from({ length: 1000 }, () => sealReply(answer, 'rt', 'k').split('.')[1]));
    expect(ivs.size).toBe(1000);
  });
});

// 0.1.0's sealing, as it shipped: AES-256-GCM under HMAC-SHA-256(token, "ninja-auth/reply/v1:" + request key), over
// `[status, headers]` as JSON, a newline and the body bytes.
const v1Key = (token: string, requestKey: string): Buffer => createHmac('sha256', token).update(`ninja-auth/reply/v1:${requestKey}`).digest();

function sealedByVersion010(reply: UpstreamAnswer, token: string, requestKey: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', v1Key(token, requestKey), iv);
  const sealed = Buffer.concat([cipher.update(`${JSON.stringify([reply.status, reply.headers])}\n`, 'utf8'), cipher.update(reply.body), cipher.final()]);
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), sealed.toString('base64url')].join('.');
}

function openedByVersion010(value: string, token: string, requestKey: string): Buffer | undefined {
  const [, iv, tag, sealed] = value.split('.');
  const decipher = createDecipheriv('aes-256-gcm', v1Key(token, requestKey), Buffer.from(iv!, 'base64url'));
  decipher.setAuthTag(Buffer.from(tag!, 'base64url'));
  const plain = Buffer.concat([decipher.update(Buffer.from(sealed!, 'base64url')), decipher.final()]);
  return plain.subarray(plain.indexOf(0x0a) + 1);
}

describe('the answer a lock holder leaves for those who waited', () => {
  it('an upstream answer of any status is sealed like a reply, and opens only for the same token and request', () => {
    const throttled = answered(429, { 'retry-after': '7', 'content-type': 'application/json' }, Buffer.from('{"error":"slow_down"}'));
    const sealed = sealOutcome(throttled, 'rt-presented', 'request-key');
    const opened = openOutcome(sealed, 'rt-presented', 'request-key');
    expect(opened?.kind).toBe('answered');
    expect(opened).toMatchObject({ status: 429, headers: throttled.headers });
    expect(opened?.kind === 'answered' && opened.body.equals(throttled.body)).toBe(true);
    expect(openOutcome(sealed, 'rt-other', 'request-key')).toBeUndefined();
  });

  it('a 502 or 504 of the router comes back as the same refusal, with its cause', () => {
    for (const status of [502, 504] as const) {
      const opened = openOutcome(sealOutcome(failure(status, 'ECONNRESET'), 'rt', 'rk'), 'rt', 'rk');
      expect(opened).toEqual(failure(status, 'ECONNRESET'));
    }
  });

  it.each([
    ['another status', 'failed.500.RUNPTlJFU0VU'],
    ['no cause', 'failed.502'],
    ['no status', 'failed'],
    ['a status that is not a number', 'failed.abc.RUNPTlJFU0VU'],
    ['an unknown version', 'v9.a.b.c'],
    ['garbage', 'garbage'],
    ['nothing', ''],
  ])('a value that was not left by a holder (%s) opens to nothing', (_what, value) => {
    expect(openOutcome(value, 'rt', 'rk')).toBeUndefined();
  });
});
