import { context, metrics, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Histogram } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import axios from 'axios';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_CLIENT, DEMO_USER, createProvider } from '../../example-app/provider.js';
import { MemoryStore, ninjaAuth, NinjaAuthConfigError, type NinjaAuthOptions, type NinjaAuthStore } from '../../src/index.js';
import { fingerprint } from '../../src/redact.js';
import { eventually, hostApp } from '../helpers/host.js';
import { AsyncLocalStorageContextManager, countsBy, type RecordedPoint, type TestTelemetry, testTelemetry } from '../helpers/otel.js';
import { type Listening, listen, rawUpstream, type RawUpstream } from '../helpers/servers.js';

// Telemetry through the real OpenTelemetry SDK (in-memory reader and exporter), against the embedded
// @node-oauth/oauth2-server provider, and raw servers for what it never does.
let telemetry: TestTelemetry;
const closing: Array<{ close(): Promise<void> }> = [];
beforeEach(() => {
  telemetry = testTelemetry();
});
afterEach(async () => {
  await Promise.all(closing.splice(0).map((c) => c.close()));
  await telemetry.shutdown();
  metrics.disable();
  trace.disable();
  context.disable();
});

const withTelemetry = (options: NinjaAuthOptions): NinjaAuthOptions => ({
  ...options,
  telemetry: { meterProvider: telemetry.meterProvider, tracerProvider: telemetry.tracerProvider },
});

/** The embedded provider; while `slow.on`, it waits before it handles a request (to catch two in flight). */
async function provider(): Promise<Listening & { tokenUrl: string; revokeUrl: string; slow: { on: boolean } }> {
  const { app } = createProvider();
  const slow = { on: false };
  const listening = await listen((req, res) => {
    if (slow.on) setTimeout(() => app(req, res), 150);
    else app(req, res);
  });
  closing.push(listening);
  return { ...listening, tokenUrl: `${listening.origin}/oauth/token`, revokeUrl: `${listening.origin}/oauth/revoke`, slow };
}

/** A memory store that throws while `failing` is set, as an unreachable Redis would. */
function failingStore(): NinjaAuthStore & { failing: boolean } {
  const inner = new MemoryStore();
  const store = {
    failing: false,
    get: (key: string) => (store.failing ? Promise.reject(new Error('store down')) : inner.get(key)),
    set: (key: string, value: string, ttlMs: number) => (store.failing ? Promise.reject(new Error('store down')) : inner.set(key, value, ttlMs)),
    setIfAbsent: (key: string, value: string, ttlMs: number) => (store.failing ? Promise.reject(new Error('store down')) : inner.setIfAbsent(key, value, ttlMs)),
    deleteIfEquals: (key: string, value: string) => (store.failing ? Promise.reject(new Error('store down')) : inner.deleteIfEquals(key, value)),
  };
  return store;
}

type Host = Parameters<typeof request>[0];
const refresh = (host: Host, token: string) => request(host).post('/auth/refresh_token').set('authorization', `Bearer ${token}`);

/** `endpoint status outcome` of every point, with how many requests each counted. */
function histogramCounts(points: ReadonlyArray<RecordedPoint<Histogram>>, keys: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { attributes, value } of points) {
    const key = keys.map((k) => String(attributes[k])).join(' ');
    counts[key] = (counts[key] ?? 0) + value.count;
  }
  return counts;
}

/** What `read` gives once `done` holds of it (for what hooks record after the response), within 2 s. */
async function once<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (const deadline = Date.now() + 2000; !done(value) && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    value = await read();
  }
  return value;
}

const spanSummary = (span: ReadableSpan) => `${span.name} ${String(span.attributes['http.response.status_code'])} ${String(span.attributes['ninja_auth.outcome'])}`;

describe('a full flow, instrument by instrument', () => {
  it('login, refresh, replay, coalesced pair, reuse, refused refresh, router refusals, revoke, unreachable upstream', async () => {
    const upstream = await provider();
    const store = failingStore();
    const host = hostApp(
      withTelemetry({
        upstream: { tokenUrl: upstream.tokenUrl, revokeUrl: upstream.revokeUrl },
        clientId: DEMO_CLIENT.id,
        clientSecret: DEMO_CLIENT.secret,
        store,
        hooks: {
          onRevoke: () => {
            throw new Error('a hook that fails');
          },
        },
      }),
    );
    const secrets: string[] = [DEMO_CLIENT.secret, DEMO_USER.password];
    const keep = (body: { access_token?: string; refresh_token?: string }): string => {
      for (const token of [body.access_token, body.refresh_token]) if (token !== undefined) secrets.push(token);
      return body.refresh_token!;
    };

    const login = await request(host).post('/auth/token').type('form').send({ username: DEMO_USER.username, password: DEMO_USER.password });
    expect(login.status).toBe(200);
    const rt0 = keep(login.body);

    const rotated = await refresh(host, rt0);
    expect(rotated.status).toBe(200);
    const rt1 = keep(rotated.body);

    const replayed = await refresh(host, rt0);
    expect(replayed.text).toBe(rotated.text);

    upstream.slow.on = true;
    const pair = await Promise.all([refresh(host, rt1), refresh(host, rt1)]);
    upstream.slow.on = false;
    expect(pair.map((r) => r.status)).toEqual([200, 200]);
    expect(pair[0]!.text).toBe(pair[1]!.text);
    const rt2 = keep(pair[0]!.body);

    // rt1 has been presented, so its predecessor rt0 is never replayed again: presenting it is a reuse.
    const reused = await refresh(host, rt0);
    expect(reused.status).toBe(400);

    store.failing = true;
    const rejected = await refresh(host, 'rt_never_issued');
    store.failing = false;
    secrets.push('rt_never_issued');
    expect(rejected.body.error).toBe('invalid_grant');

    expect((await request(host).post('/auth/refresh_token')).status).toBe(400);
    expect((await request(host).get('/auth/token')).status).toBe(405);

    expect((await request(host).post('/auth/revoke_token').type('form').send({ token: rt2 })).status).toBe(200);

    await upstream.close();
    const unreachable = await refresh(host, rt2);
    expect(unreachable.status).toBe(502);

    // ninja_auth.refresh.outcomes: every refresh the router forwarded or answered from the guard.
    await eventually(() => telemetry.spans().length === 11);
    expect(countsBy(await telemetry.points('ninja_auth.refresh.outcomes'), 'ninja_auth.outcome')).toEqual({
      rotated: 2,
      replayed: 1,
      coalesced: 1,
      reuse_detected: 1,
      rejected: 1,
      failed: 1,
    });

    // ninja_auth.request.duration: every request the router answered, refusals included.
    const requestKeys = ['ninja_auth.endpoint', 'http.response.status_code', 'ninja_auth.outcome'];
    const requests = await telemetry.points<Histogram>('ninja_auth.request.duration');
    expect(histogramCounts(requests, requestKeys)).toEqual({
      'token 200 issued': 1,
      'refresh_token 200 rotated': 2,
      'refresh_token 200 replayed': 1,
      'refresh_token 200 coalesced': 1,
      'refresh_token 400 reuse_detected': 1,
      'refresh_token 400 rejected': 1,
      'refresh_token 400 refused': 1,
      'token 405 refused': 1,
      'revoke_token 200 revoked': 1,
      'refresh_token 502 failed': 1,
    });
    for (const { attributes } of requests) expect(Object.keys(attributes).sort()).toEqual([...requestKeys].sort());

    // ninja_auth.upstream.duration: one per exchange; none for the replay, the coalesced follower or a refusal.
    const exchanges = await telemetry.points<Histogram>('ninja_auth.upstream.duration');
    expect(histogramCounts(exchanges, ['ninja_auth.endpoint', 'http.response.status_code', 'error.type', 'server.address'])).toEqual({
      'token 200 undefined 127.0.0.1': 1,
      'refresh_token 200 undefined 127.0.0.1': 2,
      'refresh_token 400 undefined 127.0.0.1': 2,
      'revoke_token 200 undefined 127.0.0.1': 1,
      'refresh_token undefined ECONNREFUSED 127.0.0.1': 1,
    });

    // A refresh over a shared store takes the lock and reads in its first batch: that is what failed.
    expect(countsBy(await telemetry.points('ninja_auth.store.errors'), 'ninja_auth.store.operation')).toEqual({ lock: 1 });
    // Hooks run after the response is finished: their failures are counted a moment later.
    const hookErrors = await once(async () => countsBy(await telemetry.points('ninja_auth.hook.errors'), 'ninja_auth.hook'), (c) => c['onRevoke'] !== undefined);
    expect(hookErrors).toEqual({ onRevoke: 1 });

    // One span per request, with the same attributes, an event per replay, coalescing and reuse detection.
    const spans = telemetry.spans();
    expect(spans.map(spanSummary).sort()).toEqual(
      [
        'ninja-auth token 200 issued',
        'ninja-auth refresh_token 200 rotated',
        'ninja-auth refresh_token 200 replayed',
        'ninja-auth refresh_token 200 rotated',
        'ninja-auth refresh_token 200 coalesced',
        'ninja-auth refresh_token 400 reuse_detected',
        'ninja-auth refresh_token 400 rejected',
        'ninja-auth refresh_token 400 refused',
        'ninja-auth token 405 refused',
        'ninja-auth revoke_token 200 revoked',
        'ninja-auth refresh_token 502 failed',
      ].sort(),
    );
    const byOutcome = (outcome: string) => spans.filter((s) => s.attributes['ninja_auth.outcome'] === outcome);
    for (const span of spans) {
      expect(span.kind).toBe(SpanKind.INTERNAL);
      expect(span.instrumentationScope.name).toBe('ninja-auth');
      expect(span.attributes['ninja_auth.endpoint']).toBe(span.name.replace('ninja-auth ', ''));
      expect(span.status.code).toBe(span.attributes['http.response.status_code'] === 502 ? SpanStatusCode.ERROR : SpanStatusCode.UNSET);
    }
    const eventsOf = (outcome: string) => byOutcome(outcome).flatMap((s) => s.events.map((e) => e.name));
    expect(eventsOf('replayed')).toEqual(['ninja_auth.replayed']);
    expect(eventsOf('coalesced')).toEqual(['ninja_auth.coalesced']);
    expect(eventsOf('rotated')).toEqual([]);
    const [reuse] = byOutcome('reuse_detected');
    expect(reuse!.events.map((e) => [e.name, e.attributes?.['ninja_auth.refresh_token.fingerprint']])).toEqual([['ninja_auth.reuse_detected', fingerprint(rt0)]]);
    expect(reuse!.events[0]!.attributes?.['ninja_auth.reuse.since_rotation_ms']).toBeGreaterThanOrEqual(0);
    expect(reuse!.attributes['ninja_auth.refresh_token.fingerprint']).toBe(fingerprint(rt0));
    expect(byOutcome('issued')[0]!.attributes['ninja_auth.grant_type']).toBe('password');
    expect(byOutcome('issued')[0]!.attributes['server.address']).toBe('127.0.0.1');
    const [failed] = byOutcome('failed');
    expect(failed!.attributes['error.type']).toBe('ECONNREFUSED');
    expect(failed!.status.message).toBe('ECONNREFUSED');
    expect(byOutcome('refused').map((s) => s.attributes['ninja_auth.error']).sort()).toEqual(['invalid_request', 'invalid_request']);
    expect(byOutcome('refused').every((s) => s.attributes['server.address'] === undefined && s.attributes['error.type'] === undefined)).toBe(true);

    // No token, password or secret anywhere: span names, attributes, events, metric attributes.
    const everything = JSON.stringify([
      spans.map((s) => [s.name, s.attributes, s.events, s.status]),
      await Promise.all(['request.duration', 'upstream.duration', 'refresh.outcomes', 'store.errors', 'hook.errors'].map((n) => telemetry.points(`ninja_auth.${n}`))),
    ]);
    expect(everything).toContain(fingerprint(rt0));
    for (const secret of secrets) expect(everything).not.toContain(secret);
  });
});

describe('the instruments', () => {
  it('have the contract’s names, kinds and units, with bucket boundaries for token requests', async () => {
    const upstream = await rawUpstream((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"at"}'));
    closing.push(upstream);
    const host = hostApp(withTelemetry({ upstream: { tokenUrl: upstream.url }, hooks: { onTokenIssued: () => Promise.reject(new Error('no')) } }));
    await request(host).post('/auth/token').type('form').send({ grant_type: 'client_credentials' });
    await refresh(host, 'rt-a');
    for (const name of ['ninja_auth.request.duration', 'ninja_auth.upstream.duration']) {
      expect(await telemetry.descriptor(name)).toEqual({ unit: 's', type: 'HISTOGRAM', monotonic: undefined, boundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] });
    }
    expect(await telemetry.descriptor('ninja_auth.refresh.outcomes')).toMatchObject({ type: 'SUM', monotonic: true });
    expect(await once(() => telemetry.descriptor('ninja_auth.hook.errors'), (d) => d !== undefined)).toMatchObject({ type: 'SUM', monotonic: true });
    const [point] = await telemetry.points<Histogram>('ninja_auth.request.duration');
    expect(point!.value.sum).toBeGreaterThan(0);
    expect(point!.value.sum).toBeLessThan(10);
  });

  it('count not_rotated, and a timeout as failed with error.type timeout and an error span', async () => {
    let hang = false;
    const upstream = await rawUpstream((res, seen) => {
      if (hang) return;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'at', refresh_token: seen.form.get('refresh_token') }));
    });
    closing.push(upstream);
    const host = hostApp(withTelemetry({ upstream: { tokenUrl: upstream.url }, timeoutMs: 200 }));
    expect((await refresh(host, 'rt-kept')).status).toBe(200);
    hang = true;
    expect((await refresh(host, 'rt-slow')).status).toBe(504);
    expect(countsBy(await telemetry.points('ninja_auth.refresh.outcomes'), 'ninja_auth.outcome')).toEqual({ not_rotated: 1, failed: 1 });
    const exchanges = await telemetry.points<Histogram>('ninja_auth.upstream.duration');
    expect(histogramCounts(exchanges, ['http.response.status_code', 'error.type'])).toEqual({ '200 undefined': 1, 'undefined timeout': 1 });
    const failed = telemetry.spans().find((s) => s.attributes['ninja_auth.outcome'] === 'failed');
    expect([failed?.status.code, failed?.attributes['error.type'], failed?.attributes['http.response.status_code']]).toEqual([SpanStatusCode.ERROR, 'timeout', 504]);
  });

  it('a refresh on /token counts as a refresh, labelled with the path the caller used', async () => {
    const upstream = await rawUpstream((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"at","refresh_token":"rt-next"}'));
    closing.push(upstream);
    const host = hostApp(withTelemetry({ upstream: { tokenUrl: upstream.url } }));
    await request(host).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: 'rt-first' });
    expect(countsBy(await telemetry.points('ninja_auth.refresh.outcomes'), 'ninja_auth.outcome')).toEqual({ rotated: 1 });
    expect(histogramCounts(await telemetry.points<Histogram>('ninja_auth.upstream.duration'), ['ninja_auth.endpoint'])).toEqual({ token: 1 });
    expect(telemetry.spans().map(spanSummary)).toEqual(['ninja-auth token 200 rotated']);
  });

  it('discovery is an upstream exchange of its own, ninja_auth.endpoint=discovery', async () => {
    let origin = '';
    const issuer = await rawUpstream((res, seen) => {
      if (seen.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: origin, token_endpoint: `${origin}/token` }));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"at"}');
      }
    });
    closing.push(issuer);
    origin = issuer.origin;
    const host = hostApp(withTelemetry({ upstream: { issuer: origin } }));
    expect((await request(host).post('/auth/token').type('form').send({ grant_type: 'client_credentials' })).status).toBe(200);
    const exchanges = await telemetry.points<Histogram>('ninja_auth.upstream.duration');
    expect(histogramCounts(exchanges, ['ninja_auth.endpoint', 'http.response.status_code', 'server.address'])).toEqual({
      'discovery 200 127.0.0.1': 1,
      'token 200 127.0.0.1': 1,
    });
  });
});

describe('the span', () => {
  let upstream: RawUpstream;
  beforeEach(async () => {
    upstream = await rawUpstream((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"at"}'));
    closing.push(upstream);
    context.setGlobalContextManager(new AsyncLocalStorageContextManager());
  });

  it('is a child of the host’s active span, and the upstream call runs inside it', async () => {
    const hostTracer = telemetry.tracerProvider.getTracer('host-app');
    const activeDuringUpstreamCall: Array<string | undefined> = [];
    const httpClient = axios.create();
    httpClient.interceptors.request.use((config) => {
      activeDuringUpstreamCall.push(trace.getActiveSpan()?.spanContext().spanId);
      return config;
    });
    const host = hostApp(withTelemetry({ upstream: { tokenUrl: upstream.url }, httpClient }), [
      (req, res, next) => {
        hostTracer.startActiveSpan(`${req.method} ${req.path}`, { kind: SpanKind.SERVER }, (span) => {
          res.on('finish', () => span.end());
          next();
        });
      },
    ]);
    await request(host).post('/auth/token').type('form').send({ grant_type: 'client_credentials' });
    await request(host).post('/auth/token').type('form').send({ grant_type: 'no_such_grant' });
    await eventually(() => telemetry.spans().length === 4);

    const spans = telemetry.spans();
    const servers = spans.filter((s) => s.kind === SpanKind.SERVER);
    const ours = spans.filter((s) => s.instrumentationScope.name === 'ninja-auth');
    expect(ours.map(spanSummary)).toEqual(['ninja-auth token 200 issued', 'ninja-auth token 400 refused']);
    for (const [i, span] of ours.entries()) {
      expect(span.parentSpanContext?.spanId).toBe(servers[i]!.spanContext().spanId);
      expect(span.spanContext().traceId).toBe(servers[i]!.spanContext().traceId);
    }
    expect(activeDuringUpstreamCall).toEqual([ours[0]!.spanContext().spanId]);
  });

  it('without a parent, is a root span', async () => {
    const host = hostApp(withTelemetry({ upstream: { tokenUrl: upstream.url } }));
    await request(host).post('/auth/token').type('form').send({ grant_type: 'client_credentials' });
    expect(telemetry.spans().map((s) => s.parentSpanContext)).toEqual([undefined]);
  });
});

describe('which providers', () => {
  let upstream: RawUpstream;
  beforeEach(async () => {
    upstream = await rawUpstream((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"at"}'));
    closing.push(upstream);
  });
  const login = (host: Host) => request(host).post('/auth/token').type('form').send({ grant_type: 'client_credentials' });

  it('by default, the global ones of @opentelemetry/api', async () => {
    metrics.setGlobalMeterProvider(telemetry.meterProvider);
    trace.setGlobalTracerProvider(telemetry.tracerProvider);
    await login(hostApp({ upstream: { tokenUrl: upstream.url } }));
    expect(telemetry.spans().map(spanSummary)).toEqual(['ninja-auth token 200 issued']);
    expect(histogramCounts(await telemetry.points<Histogram>('ninja_auth.request.duration'), ['ninja_auth.outcome'])).toEqual({ issued: 1 });
  });

  it('global providers registered after ninjaAuth() are the ones recorded to', async () => {
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, telemetry: {} });
    await login(host);
    metrics.setGlobalMeterProvider(telemetry.meterProvider);
    trace.setGlobalTracerProvider(telemetry.tracerProvider);
    await login(host);
    expect(telemetry.spans().map(spanSummary)).toEqual(['ninja-auth token 200 issued']);
    expect(histogramCounts(await telemetry.points<Histogram>('ninja_auth.request.duration'), ['ninja_auth.outcome'])).toEqual({ issued: 1 });
  });

  it('telemetry: false records nothing, even with global providers registered', async () => {
    metrics.setGlobalMeterProvider(telemetry.meterProvider);
    trace.setGlobalTracerProvider(telemetry.tracerProvider);
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, telemetry: false });
    expect((await login(host)).status).toBe(200);
    expect(await refresh(host, 'rt-x').then((r) => r.status)).toBe(200);
    expect(telemetry.spans()).toEqual([]);
    expect(await telemetry.points('ninja_auth.request.duration')).toEqual([]);
    expect(await telemetry.points('ninja_auth.upstream.duration')).toEqual([]);
  });

  it('with the API but no SDK registered, requests are served and nothing fails', async () => {
    const host = hostApp({ upstream: { tokenUrl: upstream.url } });
    expect((await login(host)).status).toBe(200);
    expect(telemetry.spans()).toEqual([]);
  });
});

describe('a provider that throws', () => {
  it('changes nothing for the caller', async () => {
    const upstream = await rawUpstream((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"at","refresh_token":"rt-2"}'));
    closing.push(upstream);
    const broken = () => {
      throw new Error('exporter bug');
    };
    const instrument = { record: broken, add: broken };
    const meterProvider = { getMeter: () => ({ createHistogram: () => instrument, createCounter: () => instrument }) };
    const tracerProvider = { getTracer: () => ({ startSpan: broken }) };
    const host = hostApp({ upstream: { tokenUrl: upstream.url }, telemetry: { meterProvider, tracerProvider }, hooks: { onRotation: broken } });
    const replies = await Promise.all([refresh(host, 'rt-1'), request(host).get('/auth/token')]);
    expect(replies.map((r) => r.status)).toEqual([200, 405]);
    expect(replies[0]!.text).toBe('{"access_token":"at","refresh_token":"rt-2"}');
  });
});

describe('the telemetry option', () => {
  const tokenUrl = 'https://idp.example.com/token';
  const problem = (telemetry: unknown): string => {
    try {
      ninjaAuth({ upstream: { tokenUrl }, telemetry } as NinjaAuthOptions);
    } catch (error) {
      expect(error).toBeInstanceOf(NinjaAuthConfigError);
      return (error as Error).message;
    }
    return 'accepted';
  };

  it('takes false, an empty object or real providers', () => {
    expect(problem(false)).toBe('accepted');
    expect(problem({})).toBe('accepted');
    expect(problem({ meterProvider: telemetry.meterProvider, tracerProvider: telemetry.tracerProvider })).toBe('accepted');
  });

  it('refuses anything else, naming the option', () => {
    expect(problem(true)).toMatch(/^ninja-auth: option "telemetry" must be false or an object/);
    expect(problem({ meterProvider: {} })).toMatch(/"telemetry\.meterProvider" must be an OpenTelemetry MeterProvider/);
    expect(problem({ tracerProvider: telemetry.meterProvider })).toMatch(/"telemetry\.tracerProvider" must be an OpenTelemetry TracerProvider/);
    expect(problem({ meterprovider: telemetry.meterProvider })).toMatch(/"telemetry\.meterprovider" is not a ninja-auth option.*did you mean "telemetry\.meterProvider"/);
  });
});
