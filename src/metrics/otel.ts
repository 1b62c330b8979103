/**
 * OpenTelemetry metrics for a pool, named after the semantic conventions for database client
 * connection pools (`db.client.connection.*`). The meter is the caller's: this module does not
 * import `@opentelemetry/api` at all (it spells out the part of `Meter` it uses), so the core
 * stays free of dependencies and this entry point costs nothing to those who do not use it.
 *
 * Current counts, limits, pending requests and timeouts are observed from `pool.stats()` when
 * the SDK collects; create, wait and use times are recorded from `pool.events()`, in seconds.
 *
 * @module
 */

import type { PoolEvent } from "../events.ts";
import type { PoolStats } from "../stats.ts";

/** What {@linkcode instrumentPool} needs of a pool: `Pool` has it. */
export interface InstrumentablePool {
  /** A fresh snapshot. */
  stats(): PoolStats;
  /** The pool's events, from now on. */
  events(options?: { bufferSize?: number }): AsyncIterableIterator<PoolEvent>;
}

/** Options of an instrument, as `@opentelemetry/api` takes them. */
export interface MeterInstrumentOptions {
  /** What the instrument measures. */
  description?: string;
  /** The UCUM unit. */
  unit?: string;
  /** Hints to the SDK; histogram bucket boundaries here. */
  advice?: { explicitBucketBoundaries?: number[] };
}

/** An observable instrument of `@opentelemetry/api`; opaque here. */
export type MeterObservable = object;

/** What a batch observable callback receives. */
export interface MeterBatchResult {
  /** Reports the current value of an observable instrument. */
  observe(observable: MeterObservable, value: number, attributes?: Record<string, string>): void;
}

/** A batch observable callback. */
export type MeterBatchCallback = (result: MeterBatchResult) => void;

/**
 * The part of an OpenTelemetry `Meter` (`@opentelemetry/api` 1.7 or later) this module uses:
 * written out here so that neither the code nor its types depend on the package. Pass the
 * real `Meter`.
 */
export interface MeterLike {
  /** Makes an observable up-down counter. */
  createObservableUpDownCounter(name: string, options?: MeterInstrumentOptions): MeterObservable;
  /** Makes an observable (monotonic) counter. */
  createObservableCounter(name: string, options?: MeterInstrumentOptions): MeterObservable;
  /** Makes a histogram. */
  createHistogram(
    name: string,
    options?: MeterInstrumentOptions,
  ): { record(value: number, attributes?: Record<string, string>): void };
  /** Registers a callback observing several instruments at each collection. */
  addBatchObservableCallback(callback: MeterBatchCallback, observables: MeterObservable[]): void;
  /** Removes a callback added with `addBatchObservableCallback`. */
  removeBatchObservableCallback(callback: MeterBatchCallback, observables: MeterObservable[]): void;
}

/** Options of {@linkcode instrumentPool}. */
export interface InstrumentPoolOptions {
  /** The meter to create the instruments with, e.g. `metrics.getMeter("my-app")`. */
  meter: MeterLike;
  /** The `db.client.connection.pool.name` attribute: unique within the application. */
  poolName: string;
  /** Events buffered between two reads of the event stream before the oldest are dropped. @default {4096} */
  bufferSize?: number;
}

/** Stops the instrumentation; what {@linkcode instrumentPool} returns. */
export interface PoolInstrumentation extends Disposable {
  /** Stops observing and recording. Calling it again does nothing. */
  close(): void;
}

// Seconds: from a fast in-process hand-off to a stuck acquire (the SDK's default buckets are
// meant for milliseconds).
const SECONDS_BUCKETS = [
  0.0001,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

const POOL_NAME = "db.client.connection.pool.name";
const STATE = "db.client.connection.state";

/**
 * Reports a pool's metrics through an OpenTelemetry `Meter`:
 *
 * | instrument | kind | unit |
 * |---|---|---|
 * | `db.client.connection.count` (`db.client.connection.state` = `idle` / `used`) | observable up-down counter | `{connection}` |
 * | `db.client.connection.max`, `db.client.connection.idle.min` | observable up-down counter | `{connection}` |
 * | `db.client.connection.pending_requests` | observable up-down counter | `{request}` |
 * | `db.client.connection.timeouts` | observable counter (since instrumented) | `{timeout}` |
 * | `db.client.connection.create_time`, `.wait_time`, `.use_time` | histogram | `s` |
 *
 * Every data point carries `db.client.connection.pool.name`. Resources being validated or
 * reset count as `used`, so `idle + used` is the pool's size. Throws `TypeError` for a missing
 * meter or pool name.
 *
 * @example
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { instrumentPool } from "@edgepool/pool/metrics/otel";
 * import { metrics } from "@opentelemetry/api";
 *
 * await using pool = new Pool({ create: () => ({}) });
 * using _metrics = instrumentPool(pool, { meter: metrics.getMeter("app"), poolName: "main" });
 * await pool.use(() => {});
 * ```
 */
export function instrumentPool(
  pool: InstrumentablePool,
  options: InstrumentPoolOptions,
): PoolInstrumentation {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`instrumentPool() needs an options object, received ${String(options)}`);
  }
  const { meter, poolName } = options;
  if (meter === null || typeof meter !== "object" || typeof meter.createHistogram !== "function") {
    throw new TypeError("instrumentPool() options.meter must be an OpenTelemetry Meter");
  }
  if (typeof poolName !== "string" || poolName === "") {
    throw new TypeError("instrumentPool() options.poolName must be a non-empty string");
  }
  const bufferSize = options.bufferSize ?? 4096;
  const pool_ = { [POOL_NAME]: poolName };
  const idle = { [POOL_NAME]: poolName, [STATE]: "idle" };
  const used = { [POOL_NAME]: poolName, [STATE]: "used" };
  const count = (description: string, unit: string): MeterInstrumentOptions => ({
    description,
    unit,
  });
  const seconds = (description: string): MeterInstrumentOptions => ({
    description,
    unit: "s",
    advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
  });

  const connections = meter.createObservableUpDownCounter(
    "db.client.connection.count",
    count(
      "The number of connections that are currently in state described by the state attribute.",
      "{connection}",
    ),
  );
  const max = meter.createObservableUpDownCounter(
    "db.client.connection.max",
    count("The maximum number of open connections allowed.", "{connection}"),
  );
  const idleMin = meter.createObservableUpDownCounter(
    "db.client.connection.idle.min",
    count("The minimum number of idle open connections allowed.", "{connection}"),
  );
  const pending = meter.createObservableUpDownCounter(
    "db.client.connection.pending_requests",
    count("The number of current pending requests for an open connection.", "{request}"),
  );
  const timeouts = meter.createObservableCounter(
    "db.client.connection.timeouts",
    count(
      "The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
      "{timeout}",
    ),
  );
  const createTime = meter.createHistogram(
    "db.client.connection.create_time",
    seconds("The time it took to create a new connection."),
  );
  const waitTime = meter.createHistogram(
    "db.client.connection.wait_time",
    seconds("The time it took to obtain an open connection from the pool."),
  );
  const useTime = meter.createHistogram(
    "db.client.connection.use_time",
    seconds("The time between borrowing a connection and returning it to the pool."),
  );

  // Timeouts counted from now: a counter starts at zero when it is created.
  const timedOutBefore = pool.stats().timedOut;
  const observables = [connections, max, idleMin, pending, timeouts];
  const observe: MeterBatchCallback = (result) => {
    const s = pool.stats();
    result.observe(connections, s.idle, idle);
    result.observe(connections, s.active + s.validating, used);
    result.observe(max, s.max, pool_);
    result.observe(idleMin, s.min, pool_);
    result.observe(pending, s.waiting, pool_);
    result.observe(timeouts, s.timedOut - timedOutBefore, pool_);
  };
  meter.addBatchObservableCallback(observe, observables);

  const events = pool.events({ bufferSize });
  const record = (event: PoolEvent): void => {
    if (event.type === "acquire") waitTime.record(event.waitedMs / 1000, pool_);
    else if (event.type === "release") useTime.record(event.heldMs / 1000, pool_);
    else if (event.type === "create") createTime.record(event.tookMs / 1000, pool_);
  };
  const read = (): void => {
    events.next().then((r) => {
      if (r.done) return;
      record(r.value);
      read();
    }, () => {});
  };
  read();

  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    meter.removeBatchObservableCallback(observe, observables);
    void events.return?.();
  };
  return { close, [Symbol.dispose]: close };
}
