import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NinjaAuthEvent, NinjaAuthOptions, RevokeEvent, RotationEvent, TokenIssuedEvent, UpstreamErrorEvent } from '../../src/index.js';
import { asBytes, eventually, hostApp, sleep } from '../helpers/host.js';
import { type RawUpstream, rawUpstream } from '../helpers/servers.js';

// The upstream answers by path: /same keeps the refresh token (no rotation), /fail is a 400.
const ROTATED = '{"access_token":"at-2","refresh_token":"rt-2","token_type":"Bearer","expires_in":300,"scope":"a b","id_token":"id-2"}';
let upstream: RawUpstream;
beforeAll(async () => {
  upstream = await rawUpstream((res, seen) => {
    const [status, body] =
      seen.url === '/fail' ? [400, '{"error":"invalid_grant","error_description":"gone"}']
      : seen.url === '/same' ? [200, '{"access_token":"at-3","refresh_token":"rt-1"}']
      : seen.url === '/revoke' ? [200, '']
      : [200, ROTATED];
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
});
afterAll(async () => {
  await upstream.close();
});

interface Recorder {
  events: NinjaAuthEvent[];
  hookErrors: Array<{ error: unknown; event: NinjaAuthEvent }>;
}
let seen: Recorder;
beforeEach(() => {
  seen = { events: [], hookErrors: [] };
});

/** Records every event and hook error; the test's own hooks replace the recorders they name. */
function app(path: string, extra: NinjaAuthOptions = {}) {
  const record = (event: NinjaAuthEvent) => void seen.events.push(event);
  const { hooks, ...rest } = extra;
  return hostApp({
    upstream: { tokenUrl: `${upstream.origin}${path}`, revokeUrl: `${upstream.origin}/revoke` },
    ...rest,
    hooks: {
      onTokenIssued: record,
      onRotation: record,
      onRevoke: record,
      onUpstreamError: record,
      onHookError: (error, event) => void seen.hookErrors.push({ error, event }),
      ...hooks,
    },
  });
}

const refresh = (host: ReturnType<typeof app>, token = 'rt-1') =>
  request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`).buffer(true).parse(asBytes);

describe('events', () => {
  it('onRotation: previousRefreshToken, rotated, the tokens and the parsed body', async () => {
    await refresh(app('/token'));
    await eventually(() => seen.events.length === 1);
    const event = seen.events[0] as RotationEvent;
    expect(event).toMatchObject({
      type: 'rotation',
      endpoint: 'refresh_token',
      status: 200,
      previousRefreshToken: 'rt-1',
      rotated: true,
      replayed: false,
      tokens: { accessToken: 'at-2', refreshToken: 'rt-2', idToken: 'id-2', tokenType: 'Bearer', expiresIn: 300, scope: 'a b' },
      body: JSON.parse(ROTATED),
    });
    expect(event.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(event.at).toBeInstanceOf(Date);
    expect(event.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('rotated is false when the upstream hands back the same refresh token', async () => {
    await refresh(app('/same'));
    await eventually(() => seen.events.length === 1);
    expect((seen.events[0] as RotationEvent).rotated).toBe(false);
  });

  it('onTokenIssued for other grants, with the username but never the password', async () => {
    await request(app('/token')).post('/auth/token').type('form').send({ username: 'alice', password: 'pw-1' });
    await eventually(() => seen.events.length === 1);
    const event = seen.events[0] as TokenIssuedEvent;
    expect(event).toMatchObject({ type: 'token_issued', endpoint: 'token', grantType: 'password', username: 'alice' });
    expect(JSON.stringify(event)).not.toContain('pw-1');
  });

  it('onRevoke with the token and its hint', async () => {
    await request(app('/token')).post('/auth/revoke_token').type('form').send({ token: 'rt-9', token_type_hint: 'refresh_token' });
    await eventually(() => seen.events.length === 1);
    expect(seen.events[0] as RevokeEvent).toMatchObject({ type: 'revoke', endpoint: 'revoke_token', status: 200, token: 'rt-9', tokenTypeHint: 'refresh_token' });
  });

  it('onUpstreamError with the upstream error and description', async () => {
    await refresh(app('/fail'));
    await eventually(() => seen.events.length === 1);
    expect(seen.events[0] as UpstreamErrorEvent).toMatchObject({ type: 'upstream_error', status: 400, error: 'invalid_grant', errorDescription: 'gone', grantType: 'refresh_token' });
  });

  it('events are deep-frozen: a hook that tries to change one fails, and the caller’s bytes are untouched', async () => {
    const host = app('/token', {
      hooks: {
        onRotation: (event) => {
          (event.tokens as { refreshToken?: string }).refreshToken = 'rt-forged';
        },
      },
    });
    const res = await refresh(host);
    expect(res.body.toString()).toBe(ROTATED);
    await eventually(() => seen.hookErrors.length === 1);
    expect(seen.hookErrors[0]!.error).toBeInstanceOf(TypeError);
    const event = seen.hookErrors[0]!.event as RotationEvent;
    expect(event.tokens.refreshToken).toBe('rt-2');
    expect(Object.isFrozen(event.body)).toBe(true);
  });
});

describe('a failing hook changes nothing for the caller', () => {
  it.each([
    ['throws', () => {
      throw new Error('boom');
    }],
    ['rejects', async () => {
      throw new Error('boom');
    }],
  ])('a hook that %s: same status and bytes, error reported to onHookError', async (_how, hook) => {
    const res = await refresh(app('/token', { hooks: { onRotation: hook } }));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(ROTATED);
    await eventually(() => seen.hookErrors.length === 1);
    expect((seen.hookErrors[0]!.error as Error).message).toBe('boom');
    expect(seen.hookErrors[0]!.event.type).toBe('rotation');
  });

  it('a hook that is still running does not delay the response (hooks run after it has finished)', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let hookStarted = false;
    let hookFinished = false;
    const host = app('/token', {
      hooks: {
        onRotation: async () => {
          hookStarted = true;
          await held;
          hookFinished = true;
        },
      },
    });
    const res = await refresh(host);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(ROTATED);
    await eventually(() => hookStarted);
    expect(hookFinished).toBe(false);
    release();
    await eventually(() => hookFinished);
  });

  it('an onHookError that throws is contained too: it ran, and the caller got the upstream bytes', async () => {
    const calls: string[] = [];
    const host = hostApp({
      upstream: { tokenUrl: `${upstream.origin}/token` },
      // Before the response, so the statuses below are decided after the hooks and onHookError have run.
      awaitHooks: true,
      hooks: {
        onRotation: () => {
          calls.push('onRotation');
          throw new Error('first');
        },
        onHookError: (error) => {
          calls.push(`onHookError ${(error as Error).message}`);
          throw new Error('second');
        },
      },
    });
    const first = await refresh(host);
    expect(calls).toEqual(['onRotation', 'onHookError first']);
    const second = await refresh(host);
    expect(calls).toHaveLength(4);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(first.body.toString()).toBe(ROTATED);
    expect(second.body.toString()).toBe(ROTATED);
  });
});

describe('awaitHooks', () => {
  it('runs the hook before the response is sent', async () => {
    const order: string[] = [];
    const host = app('/token', {
      awaitHooks: true,
      hooks: {
        onRotation: async () => {
          await sleep(30);
          order.push('hook done');
        },
      },
    });
    const res = await refresh(host);
    order.push('response received');
    expect(res.status).toBe(200);
    expect(order).toEqual(['hook done', 'response received']);
  });

  it('a hanging hook: the response goes out after hookTimeoutMs, unchanged, and the timeout is reported', async () => {
    const host = app('/token', { awaitHooks: true, hookTimeoutMs: 100, hooks: { onRotation: () => new Promise<void>(() => undefined) } });
    const res = await refresh(host);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(ROTATED);
    expect(seen.hookErrors).toHaveLength(1);
    expect(String(seen.hookErrors[0]!.error)).toContain('still running after 100 ms');
  });

  it('hookTimeoutMs bounds all of a request’s hooks together: both start at once, not one after the other', async () => {
    const order: string[] = [];
    const host = app('/token', {
      awaitHooks: true,
      hookTimeoutMs: 100,
      reuseGraceMs: 0,
      hooks: {
        onRotation: () => {
          if (!armed) return undefined;
          order.push('onRotation started');
          return new Promise<void>(() => undefined);
        },
        onReuseDetected: () => {
          order.push('onReuseDetected started');
          return new Promise<void>(() => undefined);
        },
        onHookError: (error) => void order.push(String((error as Error).message).replace(/.*hook (\w+) still running.*/, '$1 timed out')),
      },
    });
    let armed = false;
    const first = await refresh(host, 'rt-twice');
    expect(first.status).toBe(200);
    armed = true;
    // The same token again, replay off: a rotation event and a reuse event for one request.
    const res = await refresh(host, 'rt-twice');
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(ROTATED);
    expect(order.slice(0, 2).sort()).toEqual(['onReuseDetected started', 'onRotation started']);
    expect(order.slice(2).sort()).toEqual(['onReuseDetected timed out', 'onRotation timed out']);
  });

  it('a throwing hook with awaitHooks: the response is unchanged', async () => {
    const res = await refresh(app('/token', { awaitHooks: true, hooks: { onRotation: () => { throw new Error('boom'); } } }));
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(ROTATED);
    expect(seen.hookErrors).toHaveLength(1);
  });
});
