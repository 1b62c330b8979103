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

/**
 * What {@linkcode instrumentPool} needs of a pool: `Pool` has it.
 *
 * @example Instrument every pool of an application
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import {
 *   type InstrumentablePool,
 *   instrumentPool,
 *   type PoolInstrumentation,
 * } from "@edgepool/pool/metrics/otel";
 * import { metrics } from "@opentelemetry/api";
 * import assert from "node:assert/strict";
 *
 * function instrumentAll(pools: Record<string, InstrumentablePool>): PoolInstrumentation[] {
 *   const meter = metrics.getMeter("my-app");
 *   return Object.entries(pools).map(([poolName, pool]) =>
 *     instrumentPool(pool, { meter, poolName })
 *   );
 * }
 * await using reads = new Pool({ create: () => ({}) });
 * await using writes = new Pool({ create: () => ({}) }, { max: 1 });
 * const instrumentations = instrumentAll({ reads, writes });
 * assert.equal(instrumentations.length, 2);
 * for (const instrumentation of instrumentations) instrumentation.close();
 * ```
 */
export interface InstrumentablePool {
  /** A fresh snapshot. */
  stats(): PoolStats;
  /** The pool's events, from now on. */
  events(options?: { bufferSize?: number }): AsyncIterableIterator<PoolEvent>;
}

/**
 * Options of an instrument, as `@opentelemetry/api` takes them.
 *
 * @example Check the units and buckets asked for
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import {
 *   instrumentPool,
 *   type MeterInstrumentOptions,
 *   type MeterLike,
 * } from "@edgepool/pool/metrics/otel";
 * import assert from "node:assert/strict";
 *
 * const asked = new Map<string, MeterInstrumentOptions | undefined>();
 * const keep = (name: string, options?: MeterInstrumentOptions) => (asked.set(name, options), {});
 * const meter: MeterLike = {
 *   createObservableUpDownCounter: keep,
 *   createObservableCounter: keep,
 *   createHistogram: (name, options) => ({ ...keep(name, options), record() {} }),
 *   addBatchObservableCallback() {},
 *   removeBatchObservableCallback() {},
 * };
 * await using pool = new Pool({ create: () => ({}) });
 * instrumentPool(pool, { meter, poolName: "main" }).close();
 * const wait = asked.get("db.client.connection.wait_time");
 * assert.equal(wait?.unit, "s"); // seconds, with buckets from 0.1 ms
 * assert.equal(wait?.advice?.explicitBucketBoundaries?.[0], 0.0001);
 * ```
 */
export interface MeterInstrumentOptions {
  /** What the instrument measures. */
  description?: string;
  /** The UCUM unit. */
  unit?: string;
  /** Hints to the SDK; histogram bucket boundaries here. */
  advice?: { explicitBucketBoundaries?: number[] };
}

/**
 * An observable instrument of `@opentelemetry/api`; opaque here.
 *
 * @example Observables a fake meter can name
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import {
 *   instrumentPool,
 *   type MeterLike,
 *   type MeterObservable,
 * } from "@edgepool/pool/metrics/otel";
 * import assert from "node:assert/strict";
 *
 * // Opaque to edgepool: a meter makes them as it likes, here as their names.
 * const observed: MeterObservable[] = [];
 * const meter: MeterLike = {
 *   createObservableUpDownCounter: (name) => ({ name }),
 *   createObservableCounter: (name) => ({ name }),
 *   createHistogram: () => ({ record() {} }),
 *   addBatchObservableCallback: (_callback, observables) => void observed.push(...observables),
 *   removeBatchObservableCallback() {},
 * };
 * await using pool = new Pool({ create: () => ({}) });
 * instrumentPool(pool, { meter, poolName: "main" }).close();
 * assert.equal(observed.length, 5); // observed together, in one batch
 * assert.deepEqual(observed[0], { name: "db.client.connection.count" });
 * ```
 */
export type MeterObservable = object;

/**
 * What a batch observable callback receives.
 *
 * @example Read the connection counts by state
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import {
 *   instrumentPool,
 *   type MeterBatchCallback,
 *   type MeterBatchResult,
 *   type MeterLike,
 * } from "@edgepool/pool/metrics/otel";
 * import assert from "node:assert/strict";
 *
 * const callbacks: MeterBatchCallback[] = [];
 * const meter: MeterLike = {
 *   createObservableUpDownCounter: () => ({}),
 *   createObservableCounter: () => ({}),
 *   createHistogram: () => ({ record() {} }),
 *   addBatchObservableCallback: (callback) => void callbacks.push(callback),
 *   removeBatchObservableCallback() {},
 * };
 * await using pool = new Pool({ create: () => ({}) }, { min: 2 });
 * await pool.ready();
 * using _metrics = instrumentPool(pool, { meter, poolName: "main" });
 * const byState: Record<string, number> = {};
 * const result: MeterBatchResult = {
 *   observe(_observable, value, attributes) {
 *     const state = attributes?.["db.client.connection.state"];
 *     if (state !== undefined) byState[state] = value;
 *   },
 * };
 * for (const collect of callbacks) collect(result);
 * assert.deepEqual(byState, { idle: 2, used: 0 });
 * ```
 */
export interface MeterBatchResult {
  /** Reports the current value of an observable instrument. */
  observe(observable: MeterObservable, value: number, attributes?: Record<string, string>): void;
}

/**
 * A batch observable callback.
 *
 * @example Collect by hand, as the SDK does
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import {
 *   instrumentPool,
 *   type MeterBatchCallback,
 *   type MeterLike,
 * } from "@edgepool/pool/metrics/otel";
 * import assert from "node:assert/strict";
 *
 * const callbacks: MeterBatchCallback[] = [];
 * const meter: MeterLike = {
 *   createObservableUpDownCounter: (name) => ({ name }),
 *   createObservableCounter: (name) => ({ name }),
 *   createHistogram: () => ({ record() {} }),
 *   addBatchObservableCallback: (callback) => void callbacks.push(callback),
 *   removeBatchObservableCallback() {},
 * };
 * await using pool = new Pool({ create: () => ({}) }, { max: 5 });
 * using _metrics = instrumentPool(pool, { meter, poolName: "main" });
 * const values: Record<string, number> = {};
 * const name = (observable: object) => (observable as { name: string }).name;
 * for (const collect of callbacks) {
 *   collect({ observe: (observable, value) => void (values[name(observable)] = value) });
 * }
 * assert.equal(values["db.client.connection.max"], 5);
 * ```
 */
export type MeterBatchCallback = (result: MeterBatchResult) => void;

/**
 * The part of an OpenTelemetry `Meter` (`@opentelemetry/api` 1.7 or later) this module uses:
 * written out here so that neither the code nor its types depend on the package. Pass the
 * real `Meter`.
 *
 * @example A meter for unit tests, without the SDK
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { instrumentPool, type MeterLike } from "@edgepool/pool/metrics/otel";
 * import assert from "node:assert/strict";
 *
 * const recorded: string[] = [];
 * const meter: MeterLike = {
 *   createObservableUpDownCounter: () => ({}),
 *   createObservableCounter: () => ({}),
 *   createHistogram: (name) => ({ record: () => void recorded.push(name) }),
 *   addBatchObservableCallback() {},
 *   removeBatchObservableCallback() {},
 * };
 * await using pool = new Pool({ create: () => ({}) });
 * using _metrics = instrumentPool(pool, { meter, poolName: "main" });
 * await pool.use(() => {});
 * await new Promise((resolve) => setTimeout(resolve, 0)); // events are read asynchronously
 * const kinds = recorded.map((name) => name.split(".").pop());
 * assert.deepEqual(kinds, ["create_time", "wait_time", "use_time"]);
 * ```
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

/**
 * Options of {@linkcode instrumentPool}.
 *
 * @example A named pool on the application's meter
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { instrumentPool, type InstrumentPoolOptions } from "@edgepool/pool/metrics/otel";
 * import { metrics } from "@opentelemetry/api";
 * import assert from "node:assert/strict";
 *
 * const options: InstrumentPoolOptions = {
 *   meter: metrics.getMeter("my-app"),
 *   poolName: "orders-primary", // unique within the application
 *   bufferSize: 16_384, // a busy pool: more events may pile up between two reads
 * };
 * await using pool = new Pool({ create: () => ({}) });
 * using _metrics = instrumentPool(pool, options);
 * assert.throws(() => instrumentPool(pool, { ...options, poolName: "" }), TypeError);
 * ```
 */
export interface InstrumentPoolOptions {
  /** The meter to create the instruments with, e.g. `metrics.getMeter("my-app")`. */
  meter: MeterLike;
  /** The `db.client.connection.pool.name` attribute: unique within the application. */
  poolName: string;
  /** Events buffered between two reads of the event stream before the oldest are dropped. @default {4096} */
  bufferSize?: number;
}

/**
 * Stops the instrumentation; what {@linkcode instrumentPool} returns.
 *
 * @example Stop reporting a pool that goes away
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import {
 *   instrumentPool,
 *   type MeterLike,
 *   type PoolInstrumentation,
 * } from "@edgepool/pool/metrics/otel";
 * import assert from "node:assert/strict";
 *
 * let callbacks = 0;
 * const meter: MeterLike = {
 *   createObservableUpDownCounter: () => ({}),
 *   createObservableCounter: () => ({}),
 *   createHistogram: () => ({ record() {} }),
 *   addBatchObservableCallback: () => void callbacks++,
 *   removeBatchObservableCallback: () => void callbacks--,
 * };
 * const pool = new Pool({ create: () => ({}) });
 * const instrumentation: PoolInstrumentation = instrumentPool(pool, { meter, poolName: "tenant" });
 * instrumentation.close(); // e.g. when the tenant's pool is dropped
 * instrumentation.close(); // again: does nothing
 * assert.equal(callbacks, 0);
 * await pool.close();
 * ```
 */
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
  const bufferSize = options.bufferSize === undefined ? 4096 : options.bufferSize;
  // Checked before anything is registered: a throw below would leave a callback behind.
  if (typeof bufferSize !== "number" || !Number.isInteger(bufferSize) || bufferSize < 1) {
    throw new (typeof bufferSize === "number" ? RangeError : TypeError)(
      `instrumentPool() options.bufferSize must be a whole number ≥ 1, received ${
        typeof bufferSize === "number"
          ? bufferSize
          : bufferSize === null
          ? "null"
          : typeof bufferSize
      }`,
    );
  }
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
  const events = pool.events({ bufferSize });
  try {
    meter.addBatchObservableCallback(observe, observables);
  } catch (error) {
    void events.return?.();
    throw error;
  }
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
