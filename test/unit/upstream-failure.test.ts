import { AxiosError } from 'axios';
import { describe, expect, it } from 'vitest';
import { failureOf } from '../../src/upstream-failure.js';

// The one mapping from transport errors to the router's 502 / 504: the caller gets a fixed body, the log a code.
describe('transport errors → 502 or 504', () => {
  it.each([
    [Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' }), 502, 'upstream_unavailable', 'ECONNREFUSED'],
    [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 502, 'upstream_unavailable', 'ECONNRESET'],
    [new AxiosError('timeout of 10000ms exceeded', AxiosError.ECONNABORTED), 504, 'upstream_timeout', 'timeout'],
    [Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }), 504, 'upstream_timeout', 'timeout'],
    [new AxiosError('maxContentLength size of 1048576 exceeded', AxiosError.ERR_BAD_RESPONSE), 502, 'upstream_unavailable', 'ERR_BAD_RESPONSE'],
    [Object.assign(new Error('Parse Error: Expected HTTP/'), { code: 'HPE_INVALID_CONSTANT' }), 502, 'upstream_unavailable', 'HPE_INVALID_CONSTANT'],
    [new Error('no code at all'), 502, 'upstream_unavailable', 'unknown'],
    ['a string thrown', 502, 'upstream_unavailable', 'unknown'],
    [null, 502, 'upstream_unavailable', 'unknown'],
  ])('%s', (error, status, code, cause) => {
    const failed = failureOf(error);
    expect(failed.kind).toBe('failed');
    expect(failed.refusal.status).toBe(status);
    expect(failed.refusal.error).toBe(code);
    expect(failed.cause).toBe(cause);
  });

  it('never carries the transport’s message (it may hold the upstream URL) to the caller', () => {
    const failed = failureOf(Object.assign(new Error('getaddrinfo ENOTFOUND idp.internal.example'), { code: 'ENOTFOUND' }));
    expect(JSON.stringify(failed.refusal)).not.toContain('idp.internal');
    expect(failed.refusal.description).toBe('the authorization server could not be reached');
  });
});
