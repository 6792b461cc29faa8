import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NinjaAuthEvent, NinjaAuthOptions, RotationEvent } from '../../src/index.js';
import { eventually, hostApp } from '../helpers/host.js';
import { fixedReply, type RawUpstream, rawUpstream } from '../helpers/servers.js';

// What a fuzzing run of some fifteen thousand malformed requests found: each case is pinned here, named after the
// problem. A refused request never reaches the upstream.
const REPLY = '{"access_token":"at","refresh_token":"rt-next","token_type":"Bearer"}';
let upstream: RawUpstream;
beforeAll(async () => {
  upstream = await rawUpstream(fixedReply(200, { 'content-type': 'application/json' }, REPLY));
});
afterAll(async () => {
  await upstream.close();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

const options = (extra: NinjaAuthOptions = {}): NinjaAuthOptions => ({
  upstream: { tokenUrl: upstream.url, revokeUrl: `${upstream.origin}/revoke` },
  clientId: 'server-client',
  clientSecret: 'server-secret',
  ...extra,
});
const app = (extra: NinjaAuthOptions = {}) => hostApp(options(extra));
const parsedFirst = (extra: NinjaAuthOptions = {}) => hostApp(options(extra), [express.json(), express.urlencoded({ extended: false })]);

function expectRefusal(res: request.Response, status: number): void {
  expect(res.status).toBe(status);
  expect(res.body.error).toBe('invalid_request');
  expect(res.headers['cache-control']).toBe('no-store');
  expect(upstream.requests).toHaveLength(0);
}

const form = (size: number): string => `grant_type=password&username=u&password=${'p'.repeat(size - 40)}`;

/** Sends exact bytes: supertest would serialise a Buffer sent as a form. */
async function rawPost(host: express.Express, path: string, headers: http.OutgoingHttpHeaders, body: Buffer | string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const server = http.createServer(host).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path, headers }, (reply) => {
        const chunks: Buffer[] = [];
        reply.on('data', (c: Buffer) => chunks.push(c));
        reply.on('end', () => resolve({ status: reply.statusCode ?? 0, headers: reply.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(body);
    });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** A refusal, from a raw reply. */
function expectRawRefusal(res: { status: number; body: Buffer }, status: number): void {
  expect(res.status).toBe(status);
  expect(JSON.parse(res.body.toString()).error).toBe('invalid_request');
  expect(upstream.requests).toHaveLength(0);
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe('maxBodyBytes holds when the host app parsed the body first', () => {
  it('a 16,385-byte form behind express.urlencoded() → 413, as without it', async () => {
    expect(form(16_385)).toHaveLength(16_385);
    expectRefusal(await request(app()).post('/auth/token').type('form').send(form(16_385)), 413);
    expectRefusal(await request(parsedFirst()).post('/auth/token').type('form').send(form(16_385)), 413);
  });

  it('a chunked body (no Content-Length) that the host parsed is measured too', async () => {
    const chunked = request(parsedFirst()).post('/auth/token').set('content-type', 'application/x-www-form-urlencoded').set('transfer-encoding', 'chunked');
    chunked.write(form(8_000));
    chunked.write('p'.repeat(9_000));
    expectRefusal(await chunked, 413);
  });

  it('a JSON body behind express.json() over the limit → 413', async () => {
    const body = JSON.stringify({ username: 'u', password: 'p'.repeat(200) });
    expectRefusal(await request(parsedFirst({ maxBodyBytes: 128 })).post('/auth/token').set('content-type', 'application/json').send(body), 413);
  });

  it('a body at the limit still goes through', async () => {
    const res = await request(parsedFirst()).post('/auth/token').type('form').send(form(16_384));
    expect(res.status).toBe(200);
    expect(upstream.requests).toHaveLength(1);
  });
});

describe('caller-sent client credentials are never forwarded', () => {
  it.each([
    ['form', app],
    ['form, host-parsed', parsedFirst],
  ])('client_assertion, client_assertion_type and client_secret are dropped (%s)', async (_how, make) => {
    const res = await request(make()).post('/auth/token').type('form').send({
      grant_type: 'client_credentials',
      client_assertion: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_secret: 'caller-secret',
    });
    expect(res.status).toBe(200);
    const sent = upstream.requests[0]!.form;
    expect(sent.has('client_assertion')).toBe(false);
    expect(sent.has('client_assertion_type')).toBe(false);
    expect(sent.getAll('client_secret')).toEqual(['server-secret']);
  });

  it('on a refresh and on a revocation too', async () => {
    const host = app();
    await request(host).post('/auth/refresh_token').type('form').send({ refresh_token: 'rt-1', client_assertion: 'forged.jwt.value' });
    await request(host).post('/auth/revoke_token').type('form').send({ token: 'rt-1', client_assertion: 'forged.jwt.value' });
    expect(upstream.requests).toHaveLength(2);
    for (const seen of upstream.requests) expect(seen.body).not.toContain('forged');
  });
});

describe('values are never silently altered: invalid UTF-8 is a 400', () => {
  it.each([
    ['a percent-encoded invalid byte', 'grant_type=password&username=u&password=pa%FFss'],
    ['a percent-encoded lone surrogate (CESU)', 'grant_type=password&username=u&password=pa%ED%A0%80ss'],
    ['a truncated sequence', 'grant_type=password&username=u%C3&password=p'],
    ['U+FFFD itself, what a host parser leaves behind', 'grant_type=password&username=u&password=pa%EF%BF%BDss'],
  ])('form: %s', async (_what, body) => {
    expectRefusal(await request(app()).post('/auth/token').type('form').send(body), 400);
    expectRefusal(await request(parsedFirst()).post('/auth/token').type('form').send(body), 400);
  });

  it('form: raw invalid bytes in the body', async () => {
    const body = Buffer.concat([Buffer.from('grant_type=password&username=u&password=pa'), Buffer.from([0xc3, 0x28]), Buffer.from('ss')]);
    expectRawRefusal(await rawPost(app(), '/auth/token', FORM, body), 400);
    expectRawRefusal(await rawPost(parsedFirst(), '/auth/token', FORM, body), 400);
  });

  it('JSON: a lone surrogate escape, and raw invalid bytes', async () => {
    expectRefusal(await request(app()).post('/auth/token').set('content-type', 'application/json').send('{"username":"u","password":"pa\\ud800ss"}'), 400);
    expectRefusal(await request(parsedFirst()).post('/auth/token').set('content-type', 'application/json').send('{"username":"u","password":"pa\\udc00ss"}'), 400);
    const raw = Buffer.concat([Buffer.from('{"username":"u","password":"pa'), Buffer.from([0xff]), Buffer.from('ss"}')]);
    expectRawRefusal(await rawPost(app(), '/auth/token', { 'content-type': 'application/json' }, raw), 400);
    expectRawRefusal(await rawPost(parsedFirst(), '/auth/token', { 'content-type': 'application/json' }, raw), 400);
  });

  it('a bearer token with bytes outside visible ASCII', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const server = http.createServer(app()).listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/auth/refresh_token', headers: { authorization: Buffer.from('Bearer rt-\u00e9t\u00e9', 'latin1').toString('latin1') } }, (reply) => {
          const chunks: Buffer[] = [];
          reply.on('data', (c: Buffer) => chunks.push(c));
          reply.on('end', () => {
            server.close();
            resolve({ status: reply.statusCode ?? 0, body: Buffer.concat(chunks).toString() });
          });
        });
        req.on('error', reject);
        req.end();
      });
    });
    expect(res.status).toBe(400);
    expect(upstream.requests).toHaveLength(0);
  });

  it('valid multi-byte UTF-8 passes unchanged', async () => {
    const res = await request(app()).post('/auth/token').type('form').send({ grant_type: 'password', username: 'j\u00f6rg', password: 'p\u00e4ss \u{1F511}' });
    expect(res.status).toBe(200);
    expect(upstream.requests[0]!.form.get('password')).toBe('p\u00e4ss \u{1F511}');
    expect(upstream.requests[0]!.form.get('username')).toBe('j\u00f6rg');
  });
});

describe('Content-Encoding is decoded or refused', () => {
  const plain = 'grant_type=password&username=u&password=zipped-pass';
  it.each([
    ['gzip', zlib.gzipSync],
    ['deflate', zlib.deflateSync],
    ['br', zlib.brotliCompressSync],
  ] as const)('a real %s body is decoded and forwarded', async (encoding, encode) => {
    const res = await rawPost(app(), '/auth/token', { ...FORM, 'content-encoding': encoding }, encode(Buffer.from(plain)));
    expect(res.status).toBe(200);
    expect(upstream.requests[0]!.form.get('password')).toBe('zipped-pass');
  });

  it('a plain body labelled gzip → 400, never forwarded as it is', async () => {
    expectRefusal(await request(app()).post('/auth/token').set('content-type', 'application/x-www-form-urlencoded').set('content-encoding', 'gzip').send(plain), 400);
  });

  it('an encoding the router does not decode → 415', async () => {
    expectRefusal(await request(app()).post('/auth/token').set('content-type', 'application/x-www-form-urlencoded').set('content-encoding', 'compress').send(plain), 415);
  });

  it('maxBodyBytes holds after decoding: a small gzip that unpacks past it → 413', async () => {
    const bomb = zlib.gzipSync(Buffer.from(`grant_type=password&username=u&password=${'a'.repeat(100_000)}`));
    expect(bomb.length).toBeLessThan(16_384);
    expectRawRefusal(await rawPost(app(), '/auth/token', { ...FORM, 'content-encoding': 'gzip' }, bomb), 413);
  });

  it('identity is accepted as no encoding', async () => {
    const res = await request(app()).post('/auth/token').set('content-type', 'application/x-www-form-urlencoded').set('content-encoding', 'identity').send(plain);
    expect(res.status).toBe(200);
  });
});

describe('a body that stalls', () => {
  it('is answered 408 once timeoutMs has passed without the rest of it, and the connection is closed', async () => {
    const server = http.createServer(app({ timeoutMs: 200 })).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const answer = await new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
        const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '100' } }, (reply) => {
          const chunks: Buffer[] = [];
          reply.on('data', (c: Buffer) => chunks.push(c));
          reply.on('end', () => resolve({ status: reply.statusCode ?? 0, connection: reply.headers.connection, body: Buffer.concat(chunks).toString() }));
        });
        req.on('error', reject);
        req.write('grant_type=pass');
      });
      expect(answer.status).toBe(408);
      expect(answer.connection).toBe('close');
      expect(JSON.parse(answer.body).error).toBe('invalid_request');
      expect(upstream.requests).toHaveLength(0);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('events cannot be changed', () => {
  it('event.at and rotatedAt refuse setTime() and every other setter; the next event is unaffected', async () => {
    const errors: unknown[] = [];
    const seen: NinjaAuthEvent[] = [];
    const host = app({
      awaitHooks: true,
      hooks: {
        onRotation: (event) => {
          seen.push(event);
          event.at.setTime(0);
        },
        onHookError: (error) => void errors.push(error),
      },
    });
    await request(host).post('/auth/refresh_token').set('authorization', 'Bearer rt-dates');
    await eventually(() => errors.length === 1);
    expect(errors[0]).toBeInstanceOf(TypeError);
    const event = seen[0] as RotationEvent;
    expect(event.at).toBeInstanceOf(Date);
    expect(event.at.getTime()).toBeGreaterThan(0);
    for (const setter of ['setFullYear', 'setMonth', 'setDate', 'setHours', 'setMinutes', 'setSeconds', 'setMilliseconds', 'setUTCFullYear', 'setYear'] as const) {
      expect(() => (event.at as unknown as Record<string, (n: number) => void>)[setter]!(1)).toThrow(TypeError);
    }
  });
});
