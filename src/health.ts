/**
 * How a pool is doing, in two forms: `pool.health()`, a verdict with alerts computed from one
 * stats snapshot against thresholds, and `pool.watch()`, an async iterable of stats snapshots
 * taken on an unref'd interval, for dashboards and logs.
 *
 * @module
 */

import type { PoolEvent } from "./events.ts";
import { requireCount, requireDuration, requireNumber } from "./options.ts";
import type { PoolStats, WaitStats } from "./stats.ts";
import { cancelEvery, every, type TimerHandle } from "./_timers.ts";

/**
 * What a {@linkcode HealthAlert} is about.
 *
 * @example Page someone only for some alerts
 * ```ts
 * import { type HealthAlertCode, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const paging: readonly HealthAlertCode[] = ["exhausted", "create-errors"];
 * await using pool = new Pool({ create: () => ({}) }, { max: 1 });
 * await using _lease = await pool.acquire(); // 1 of max 1 in use
 * const codes = pool.health().alerts.map((alert) => alert.code);
 * assert.deepEqual(codes, ["high-utilization"]);
 * assert.equal(codes.some((code) => paging.includes(code)), false); // worth a look, not a page
 * ```
 */
export type HealthAlertCode =
  | "exhausted"
  | "high-utilization"
  | "slow-wait"
  | "low-hit-rate"
  | "create-errors"
  | "validation-failures";

/**
 * One problem found by `pool.health()`.
 *
 * @example Log the alerts
 * ```ts
 * import { type HealthAlert, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) }, { max: 2 });
 * await using _lease = await pool.acquire();
 * const alerts: HealthAlert[] = pool.health({ utilization: 0.4 }).alerts;
 * const lines = alerts.map((alert) => `[${alert.code}] ${alert.message}`);
 * assert.match(lines[0], /^\[high-utilization\] high utilization: 1 of max 2 resources in use/);
 * ```
 */
export interface HealthAlert {
  /** A stable code to match on. */
  code: HealthAlertCode;
  /** A sentence for people, with the numbers that raised it. */
  message: string;
}

/**
 * The verdict of `pool.health()`.
 *
 * @example A one-line summary
 * ```ts
 * import { Pool, type PoolHealth } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * function summary(health: PoolHealth): string {
 *   const verdict = health.healthy ? "ok" : health.alerts.map((alert) => alert.code).join(", ");
 *   return `${verdict}: ${Math.round(health.utilization * 100)} % in use, ` +
 *     `p99 wait ${health.waitMs.p99} ms, hit rate ${health.hitRate}`;
 * }
 * await using pool = new Pool({ create: () => ({}) }, { max: 4 });
 * await using _lease = await pool.acquire();
 * assert.match(summary(pool.health()), /^ok: 25 % in use, p99 wait/);
 * ```
 */
export interface PoolHealth {
  /** True when there is no alert. */
  healthy: boolean;
  /** Resources in use over `max`, from 0 to 1. */
  utilization: number;
  /** Time acquires spent waiting, as in `pool.stats()`. */
  waitMs: WaitStats;
  /** Acquires served by an idle resource, over all acquires served (1 when none yet). */
  hitRate: number;
  /** What is wrong, if anything; empty when healthy. */
  alerts: HealthAlert[];
}

/**
 * When `pool.health()` raises each alert. Shares are numbers from 0 to 1.
 *
 * @example Stricter waits, laxer hit rate
 * ```ts
 * import { type HealthThresholds, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const thresholds: HealthThresholds = { waitP99Ms: 250, hitRate: 0.5 };
 * await using pool = new Pool({ create: () => ({}) });
 * assert.deepEqual(pool.health(thresholds).alerts, []);
 * ```
 */
export interface HealthThresholds {
  /** `"high-utilization"` when the share of `max` in use is above this. @default {0.9} */
  utilization?: number;
  /** `"slow-wait"` when the 99th-percentile acquire wait is above this. @default {1_000} */
  waitP99Ms?: number;
  /** `"low-hit-rate"` when the hit rate is below this. @default {0.8} */
  hitRate?: number;
  /** The hit rate is judged only once this many acquires were served. @default {20} */
  minAcquires?: number;
  /** `"create-errors"` when the share of creates attempted that failed is above this. @default {0.1} */
  createErrorRate?: number;
  /** `"validation-failures"` when the share of validations that failed is above this. @default {0.1} */
  validationFailureRate?: number;
}

/** The defaults of {@linkcode HealthThresholds}. */
export const HEALTH_DEFAULTS: Readonly<Required<HealthThresholds>> = Object.freeze({
  utilization: 0.9,
  waitP99Ms: 1_000,
  hitRate: 0.8,
  minAcquires: 20,
  createErrorRate: 0.1,
  validationFailureRate: 0.1,
});

function share(what: string, value: unknown): number {
  const n = requireNumber(what, value);
  if (n < 0 || n > 1) throw new RangeError(`${what} must be in [0, 1], received ${n}`);
  return n;
}

function resolveThresholds(thresholds: HealthThresholds | undefined): Required<HealthThresholds> {
  if (thresholds === undefined) return HEALTH_DEFAULTS;
  if (thresholds === null || typeof thresholds !== "object") {
    throw new TypeError(`health() thresholds must be an object, received ${String(thresholds)}`);
  }
  for (const key of Object.keys(thresholds)) {
    if (!Object.hasOwn(HEALTH_DEFAULTS, key)) {
      throw new TypeError(`health(): unknown threshold ${JSON.stringify(key)}`);
    }
  }
  const t = { ...HEALTH_DEFAULTS };
  for (const [key, value] of Object.entries(thresholds)) {
    if (value !== undefined) (t as Record<string, unknown>)[key] = value;
  }
  share("health() thresholds.utilization", t.utilization);
  share("health() thresholds.hitRate", t.hitRate);
  share("health() thresholds.createErrorRate", t.createErrorRate);
  share("health() thresholds.validationFailureRate", t.validationFailureRate);
  requireDuration("health() thresholds.waitP99Ms", t.waitP99Ms);
  requireCount("health() thresholds.minAcquires", t.minAcquires, 0, false);
  return t;
}

const percent = (x: number) => `${Math.round(x * 1000) / 10} %`;

/**
 * Judges a stats snapshot against thresholds: what `pool.health()` returns. Throws
 * `TypeError` for an unknown threshold and `RangeError` for one out of range.
 *
 * @example A health check endpoint
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) }, { max: 2 });
 * const lease = await pool.acquire();
 * const health = pool.health({ utilization: 0.5 });
 * const response = Response.json(health, { status: health.healthy ? 200 : 503 });
 * assert.equal(response.status, 200); // 1 of 2 in use is not above 50 %
 * await lease.release();
 * ```
 */
export function poolHealth(stats: PoolStats, thresholds?: HealthThresholds): PoolHealth {
  const t = resolveThresholds(thresholds);
  const alerts: HealthAlert[] = [];
  const utilization = stats.max > 0 ? stats.active / stats.max : 0;

  if (stats.idle === 0 && stats.waiting > 0) {
    alerts.push({
      code: "exhausted",
      message: `pool exhausted: ${stats.waiting} waiting, no idle resource, ` +
        `${stats.active} of max ${stats.max} in use, ${stats.creating} creating`,
    });
  }
  if (utilization > t.utilization) {
    alerts.push({
      code: "high-utilization",
      message: `high utilization: ${stats.active} of max ${stats.max} resources in use ` +
        `(${percent(utilization)}, threshold ${percent(t.utilization)})`,
    });
  }
  if (stats.waitMs.p99 > t.waitP99Ms) {
    alerts.push({
      code: "slow-wait",
      message: `slow acquires: p99 wait is ${stats.waitMs.p99} ms (threshold ${t.waitP99Ms} ms, ` +
        `max ${stats.waitMs.max} ms)`,
    });
  }
  if (stats.acquired >= t.minAcquires && stats.hitRate < t.hitRate) {
    alerts.push({
      code: "low-hit-rate",
      message: `low hit rate: ${percent(stats.hitRate)} of ${stats.acquired} acquires found ` +
        `an idle resource (threshold ${percent(t.hitRate)})`,
    });
  }
  const creates = stats.created + stats.createErrors;
  if (creates > 0 && stats.createErrors / creates > t.createErrorRate) {
    alerts.push({
      code: "create-errors",
      message: `create errors: ${stats.createErrors} of ${creates} creates failed ` +
        `(${percent(stats.createErrors / creates)}, threshold ${percent(t.createErrorRate)})`,
    });
  }
  const validations = stats.validations;
  if (
    validations > 0 &&
    stats.validationFailures / validations > t.validationFailureRate
  ) {
    const rate = stats.validationFailures / validations;
    alerts.push({
      code: "validation-failures",
      message: `validation failures: ${stats.validationFailures} of ${validations} validations ` +
        `failed (${percent(rate)}, threshold ${percent(t.validationFailureRate)})`,
    });
  }
  return {
    healthy: alerts.length === 0,
    utilization,
    waitMs: stats.waitMs,
    hitRate: stats.hitRate,
    alerts,
  };
}

/**
 * Options of `pool.watch()`.
 *
 * @example Sample until told to stop
 * ```ts
 * import { Pool, type WatchOptions } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) });
 * const done = new AbortController();
 * const options: WatchOptions = { intervalMs: 10, signal: done.signal };
 * // The job keeps the process alive: the watch's interval is unref'd and would not.
 * const job = pool.use(() => new Promise((resolve) => setTimeout(resolve, 50)));
 * const stopping = job.then(() => done.abort()); // ends the loop and clears the interval
 * const inUse: number[] = [];
 * for await (const stats of pool.watch(options)) inUse.push(stats.active);
 * await stopping;
 * assert.ok(inUse.length >= 2 && inUse.includes(1));
 * ```
 */
export interface WatchOptions {
  /** Time between two snapshots; the first comes at once. Finite, at least 1. */
  intervalMs: number;
  /** Ends the iteration when aborted. */
  signal?: AbortSignal;
}

/** What {@linkcode watchStats} needs of a pool. */
export interface WatchPool {
  /** A fresh snapshot. */
  stats(): PoolStats;
  /** The pool's events: their end tells that the pool closed. */
  events(options?: { bufferSize?: number }): AsyncIterableIterator<PoolEvent>;
  /** True once `close()` was called: a watch started then ends at once. */
  readonly closed?: boolean;
}

type Settle = (result: IteratorResult<PoolStats>) => void;

class Watcher implements AsyncIterableIterator<PoolStats> {
  readonly #pool: WatchPool;
  readonly #intervalMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => this.#end();
  #started = false;
  #ended = false;
  #due = false; // a tick passed with no read waiting: the next read gets a snapshot at once
  #timer: TimerHandle | undefined = undefined;
  #events: AsyncIterableIterator<PoolEvent> | undefined = undefined;
  #waiting: Settle[] = [];

  constructor(pool: WatchPool, intervalMs: number, signal: AbortSignal | undefined) {
    this.#pool = pool;
    this.#intervalMs = intervalMs;
    this.#signal = signal;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<PoolStats> {
    return this;
  }

  next(): Promise<IteratorResult<PoolStats>> {
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (!this.#started) {
      this.#start();
      if (this.#ended) return Promise.resolve({ value: undefined, done: true });
      return Promise.resolve({ value: this.#pool.stats(), done: false });
    }
    if (this.#due) {
      this.#due = false;
      return Promise.resolve({ value: this.#pool.stats(), done: false });
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  return(): Promise<IteratorResult<PoolStats>> {
    this.#end();
    return Promise.resolve({ value: undefined, done: true });
  }

  #start(): void {
    this.#started = true;
    if (this.#signal?.aborted || this.#pool.closed === true) return this.#end();
    // The event stream ends when the pool has closed; a one-slot buffer keeps it cheap.
    const events = this.#pool.events({ bufferSize: 1 });
    this.#events = events;
    const drain = (): void => {
      events.next().then((r) => r.done ? this.#end() : drain(), () => this.#end());
    };
    drain();
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#timer = every(this.#intervalMs, () => this.#tick());
  }

  #tick(): void {
    const settle = this.#waiting.shift();
    if (settle === undefined) this.#due = true;
    else settle({ value: this.#pool.stats(), done: false });
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#timer !== undefined) cancelEvery(this.#timer);
    this.#timer = undefined;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    void this.#events?.return?.();
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const settle of waiting) settle({ value: undefined, done: true });
  }
}

/**
 * Stats snapshots every `intervalMs`, the first at once: what `pool.watch()` returns. Ticks
 * that pass while the reader is busy collapse into one fresh snapshot, so a slow reader never
 * builds a backlog. Ends on `break`, the signal, or once the pool has closed. The interval is
 * unref'd (it never keeps a process alive), starts at the first read and stops at the end.
 *
 * @example Log the pool every 10 s until shutdown
 * ```ts
 * import { Pool } from "@edgepool/pool";
 *
 * const pool = new Pool({ create: () => ({}) });
 * const logging = (async () => {
 *   for await (const s of pool.watch({ intervalMs: 10_000 })) {
 *     console.log(`${s.active}/${s.max} in use, ${s.waiting} waiting, p99 ${s.waitMs.p99} ms`);
 *   }
 * })();
 * await pool.use(() => {});
 * await pool.close(); // ends the loop
 * await logging;
 * ```
 */
export function watchStats(
  pool: WatchPool,
  options: WatchOptions,
): AsyncIterableIterator<PoolStats> {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`watch() needs an options object, received ${String(options)}`);
  }
  const intervalMs = requireDuration("watch() options.intervalMs", options.intervalMs);
  if (intervalMs < 1 || intervalMs === Infinity) {
    throw new RangeError(
      `watch() options.intervalMs must be a finite duration ≥ 1 ms, received ${intervalMs}`,
    );
  }
  const signal = options.signal;
  if (
    signal !== undefined &&
    (signal === null || typeof (signal as AbortSignal).addEventListener !== "function")
  ) {
    throw new TypeError("watch() options.signal must be an AbortSignal");
  }
  return new Watcher(pool, intervalMs, signal);
}
