import { AsyncLocalStorage } from 'node:async_hooks';
import { type Attributes, type Context, type ContextManager, ROOT_CONTEXT } from '@opentelemetry/api';
import { type DataPoint, DataPointType, type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

// The real OpenTelemetry SDK with in-memory reader and exporter: what a host app registers, minus the network.

/** A reader that hands the test what an exporter would be given, on demand. */
class CollectingReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export interface RecordedPoint<T> {
  readonly attributes: Attributes;
  readonly value: T;
}

export interface TestTelemetry {
  readonly meterProvider: MeterProvider;
  readonly tracerProvider: BasicTracerProvider;
  /** Every point of a metric, or none when it recorded nothing. */
  points<T = number>(name: string): Promise<Array<RecordedPoint<T>>>;
  /** A metric's description as the SDK registered it (unit, type), when it exists. */
  descriptor(name: string): Promise<{ unit: string; type: string; monotonic: boolean | undefined; boundaries: number[] | undefined } | undefined>;
  spans(): ReadableSpan[];
  shutdown(): Promise<void>;
}

export function testTelemetry(): TestTelemetry {
  const reader = new CollectingReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const metrics = async () => {
    const { resourceMetrics, errors } = await reader.collect();
    if (errors.length > 0) throw errors[0];
    return resourceMetrics.scopeMetrics.filter((s) => s.scope.name === 'ninja-auth').flatMap((s) => s.metrics);
  };
  return {
    meterProvider,
    tracerProvider,
    async points<T>(name: string) {
      const metric = (await metrics()).find((m) => m.descriptor.name === name);
      return ((metric?.dataPoints ?? []) as Array<DataPoint<T>>).map((p) => ({ attributes: p.attributes, value: p.value }));
    },
    async descriptor(name) {
      const metric = (await metrics()).find((m) => m.descriptor.name === name);
      if (metric === undefined) return undefined;
      const first = metric.dataPoints[0] as DataPoint<Histogram | number> | undefined;
      const boundaries = typeof first?.value === 'object' ? first.value.buckets.boundaries : undefined;
      const monotonic = metric.dataPointType === DataPointType.SUM ? metric.isMonotonic : undefined;
      return { unit: metric.descriptor.unit, type: DataPointType[metric.dataPointType], monotonic, boundaries };
    },
    spans: () => exporter.getFinishedSpans(),
    async shutdown() {
      await Promise.all([meterProvider.shutdown(), tracerProvider.shutdown()]);
    },
  };
}

/** Sums of a counter's points, by the value of one attribute. */
export function countsBy(points: ReadonlyArray<RecordedPoint<number>>, attribute: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { attributes, value } of points) {
    const key = String(attributes[attribute]);
    counts[key] = (counts[key] ?? 0) + value;
  }
  return counts;
}

/**
 * The context manager a Node SDK registers (`@opentelemetry/context-async-hooks`' AsyncLocalStorage one), in
 * its few lines: what lets a span started in a host's middleware be the active one inside the router.
 */
export class AsyncLocalStorageContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>();

  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(context: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.#storage.run(context, () => fn.call(thisArg, ...args));
  }

  bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const manager = this;
    return function bound(this: unknown, ...args: unknown[]) {
      return manager.with(context, () => (target as (...a: unknown[]) => unknown).apply(this, args));
    } as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.#storage.disable();
    return this;
  }
}
