import type { Attributes, Context, Counter, Histogram, Meter, MeterProvider, Span, SpanOptions, Tracer, TracerProvider } from '@opentelemetry/api';
import { NinjaAuthConfigError } from '../errors.js';
import { type Instrumentation, NO_INSTRUMENTATION, type RequestTrace, type UpstreamExchangeRecord } from '../instrumentation.js';
import { telemetryLog } from '../log.js';
import type { TelemetrySettings } from '../options.js';
import type { RequestRecord } from '../record.js';
import { describeError, fingerprint } from '../redact.js';
import type { EndpointName } from '../types.js';
import { ATTR, DURATION_BUCKETS_S, EVENTS, INSTRUMENTS, SCOPE, serverAddressOf, spanName } from './conventions.js';
import { type OpenTelemetry, openTelemetryApi, packageVersion } from './load-api.js';

/**
 * The router's instrumentation: OpenTelemetry's when `telemetry` is not `false` and `@opentelemetry/api` is
 * installed, else one that does nothing and has loaded nothing.
 */
export function telemetryInstrumentation(settings: TelemetrySettings): Instrumentation {
  if (settings === false) return NO_INSTRUMENTATION;
  const api = openTelemetryApi();
  if (api === undefined) {
    if (settings.meterProvider !== undefined || settings.tracerProvider !== undefined) {
      throw new NinjaAuthConfigError('telemetry', 'was given providers, but @opentelemetry/api is not installed: npm install @opentelemetry/api');
    }
    return NO_INSTRUMENTATION;
  }
  const version = packageVersion();
  const instruments = instrumentsSource(api, settings.meterProvider as MeterProvider | undefined, version);
  const tracer = ((settings.tracerProvider as TracerProvider | undefined) ?? api.trace.getTracerProvider()).getTracer(SCOPE, version);
  telemetryLog('recording to the %s meter provider and the %s tracer provider', settings.meterProvider ? 'given' : 'global', settings.tracerProvider ? 'given' : 'global');
  return new OpenTelemetryInstrumentation(api, instruments, tracer);
}

interface Instruments {
  readonly requestDuration: Histogram;
  readonly upstreamDuration: Histogram;
  readonly refreshOutcomes: Counter;
  readonly storeErrors: Counter;
  readonly hookErrors: Counter;
}

function createInstruments(meter: Meter): Instruments {
  const advice = { explicitBucketBoundaries: DURATION_BUCKETS_S };
  return {
    requestDuration: meter.createHistogram(INSTRUMENTS.requestDuration, {
      unit: 's',
      description: 'Requests the router answered, refusals included, from arrival to answer',
      advice,
    }),
    upstreamDuration: meter.createHistogram(INSTRUMENTS.upstreamDuration, {
      unit: 's',
      description: 'Exchanges with the upstream authorization server, discovery included',
      advice,
    }),
    refreshOutcomes: meter.createCounter(INSTRUMENTS.refreshOutcomes, { description: 'Refreshes the router forwarded or answered from the rotation guard, by outcome' }),
    storeErrors: meter.createCounter(INSTRUMENTS.storeErrors, { description: 'Store failures; the refresh went on without the shared store' }),
    hookErrors: meter.createCounter(INSTRUMENTS.hookErrors, { description: 'Hooks that threw, rejected or timed out' }),
  };
}

/**
 * The instruments to record with. A given provider's are made once. The global provider is looked up again on
 * each use (a cheap read of a global), so an SDK registered after `ninjaAuth()` is still the one recorded to.
 */
function instrumentsSource(api: OpenTelemetry, given: MeterProvider | undefined, version: string | undefined): () => Instruments {
  if (given !== undefined) {
    const fixed = createInstruments(given.getMeter(SCOPE, version));
    return () => fixed;
  }
  let provider = api.metrics.getMeterProvider();
  let current = createInstruments(provider.getMeter(SCOPE, version));
  return () => {
    const now = api.metrics.getMeterProvider();
    if (now !== provider) {
      provider = now;
      current = createInstruments(now.getMeter(SCOPE, version));
    }
    return current;
  };
}

const SPAN_OPTIONS = new Map<EndpointName, SpanOptions>();

class OpenTelemetryInstrumentation implements Instrumentation {
  constructor(
    private readonly api: OpenTelemetry,
    private readonly instruments: () => Instruments,
    private readonly tracer: Tracer,
  ) {}

  requestStarted(endpoint: EndpointName): RequestTrace {
    try {
      let options = SPAN_OPTIONS.get(endpoint);
      if (options === undefined) {
        options = { kind: this.api.SpanKind.INTERNAL, attributes: { [ATTR.endpoint]: endpoint } };
        SPAN_OPTIONS.set(endpoint, options);
      }
      const parent = this.api.context.active();
      return new RequestSpan(this.api, this.instruments, this.tracer.startSpan(spanName(endpoint), options, parent), parent);
    } catch (error) {
      reportFailure('starting a span', error);
      return NO_INSTRUMENTATION.requestStarted(endpoint);
    }
  }

  upstreamExchange(record: UpstreamExchangeRecord): void {
    try {
      const attributes: Attributes = { [ATTR.endpoint]: record.endpoint, [ATTR.serverAddress]: record.serverAddress };
      if (record.status !== undefined) attributes[ATTR.statusCode] = record.status;
      if (record.errorType !== undefined) attributes[ATTR.errorType] = record.errorType;
      this.instruments().upstreamDuration.record(record.durationMs / 1000, attributes);
    } catch (error) {
      reportFailure(INSTRUMENTS.upstreamDuration, error);
    }
  }

  storeError(operation: string): void {
    try {
      this.instruments().storeErrors.add(1, { [ATTR.storeOperation]: operation });
    } catch (error) {
      reportFailure(INSTRUMENTS.storeErrors, error);
    }
  }

  hookError(hook: string): void {
    try {
      this.instruments().hookErrors.add(1, { [ATTR.hook]: hook });
    } catch (error) {
      reportFailure(INSTRUMENTS.hookErrors, error);
    }
  }
}

/** A provider that throws changes nothing for the caller: the failure goes to the debug log only. */
function reportFailure(what: string, error: unknown): void {
  telemetryLog('%s failed: %s', what, describeError(error, []));
}

class RequestSpan implements RequestTrace {
  constructor(
    private readonly api: OpenTelemetry,
    private readonly instruments: () => Instruments,
    private readonly span: Span,
    private readonly parent: Context,
  ) {}

  /** A span that is not recorded (no SDK, or sampled out) is not made the active one: its children lose nothing. */
  within<T>(work: () => T): T {
    if (!this.span.isRecording()) return work();
    return this.api.context.with(this.api.trace.setSpan(this.parent, this.span), work);
  }

  end(record: RequestRecord): void {
    const { endpoint, status, outcome } = record;
    try {
      const instruments = this.instruments();
      instruments.requestDuration.record(record.durationMs / 1000, { [ATTR.endpoint]: endpoint, [ATTR.statusCode]: status, [ATTR.outcome]: outcome });
      if (record.isRefresh) instruments.refreshOutcomes.add(1, { [ATTR.outcome]: outcome });
    } catch (error) {
      reportFailure(INSTRUMENTS.requestDuration, error);
    }
    try {
      if (this.span.isRecording()) annotate(this.api, this.span, record);
      this.span.end();
    } catch (error) {
      reportFailure('ending the span', error);
    }
  }
}

/** The span's attributes, events and status. Tokens appear only as fingerprints; no secret ever does. */
function annotate(api: OpenTelemetry, span: Span, record: RequestRecord): void {
  const { exchange, upstream, refusal, status } = record;
  const attributes: Attributes = {
    [ATTR.outcome]: record.outcome,
    [ATTR.statusCode]: status,
    [ATTR.requestId]: record.requestId,
  };
  if (record.upstreamUrl !== undefined) attributes[ATTR.serverAddress] = serverAddressOf(record.upstreamUrl);
  if (exchange?.grantType !== undefined) attributes[ATTR.grantType] = exchange.grantType;
  if (exchange?.presentedRefreshToken !== undefined) attributes[ATTR.refreshTokenFingerprint] = fingerprint(exchange.presentedRefreshToken);
  if (refusal !== undefined) attributes[ATTR.refusalError] = refusal.error;
  const errorType = status >= 500 ? (upstream?.kind === 'failed' ? upstream.cause : refusal?.error ?? String(status)) : undefined;
  if (errorType !== undefined) attributes[ATTR.errorType] = errorType;
  span.setAttributes(attributes);

  if (record.source === 'store') span.addEvent(EVENTS.replayed);
  if (record.source === 'coalesced') span.addEvent(EVENTS.coalesced);
  if (record.reuse !== undefined) {
    span.addEvent(EVENTS.reuseDetected, {
      [ATTR.refreshTokenFingerprint]: record.reuse.fingerprint,
      [ATTR.sinceRotationMs]: Math.max(0, (record.exchange?.at.getTime() ?? Date.now()) - record.reuse.rotatedAt.getTime()),
    });
  }
  if (errorType !== undefined) span.setStatus({ code: api.SpanStatusCode.ERROR, message: errorType });
}
