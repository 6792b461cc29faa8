import { describe, expect, it } from 'vitest';
import { answered } from '../../src/upstream.js';

describe('an upstream answer', () => {
  it('parses its body as JSON once, however often it is asked', () => {
    const answer = answered(200, { 'content-type': 'application/json' }, Buffer.from('{"refresh_token":"rt-next"}'));
    const first = answer.json;
    expect(first).toEqual({ refresh_token: 'rt-next' });
    expect(answer.json).toBe(first);
  });

  it.each([
    ['empty', ''],
    ['not JSON', '<html>502 Bad Gateway</html>'],
    ['cut short', '{"access_token":"at'],
  ])('has no JSON when the body is %s, and keeps the bytes', (_, text) => {
    const answer = answered(502, {}, Buffer.from(text));
    expect(answer.json).toBeUndefined();
    expect(answer.body.toString()).toBe(text);
  });
});
