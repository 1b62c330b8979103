/**
 * Counters and a wait-time histogram. Recording a wait is O(1) and allocates nothing: waits
 * fall into log-linear buckets (16 per power of two, so a reported percentile is within about
 * 6 % of the true value) over a fixed table of about 3 KiB, however long the pool runs.
 *
 * @module
 */

/**
 * Wait-time figures of the acquires served so far, in milliseconds.
 *
 * @example Warn when acquires wait
 * ```ts
 * import { Pool, type WaitStats } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) }, { max: 1 });
 * const hold = () => new Promise((resolve) => setTimeout(resolve, 5));
 * await Promise.all([pool.use(hold), pool.use(hold), pool.use(hold)]); // two of them wait
 * const wait: WaitStats = pool.stats().waitMs;
 * if (wait.p99 > 1_000) console.warn(`slow acquires: p99 ${wait.p99} ms, max ${wait.max} ms`);
 * assert.ok(wait.max > 0 && wait.avg <= wait.max && wait.p50 <= wait.p99);
 * ```
 */
export interface WaitStats {
  /** The mean wait. */
  avg: number;
  /** The median wait. */
  p50: number;
  /** The 99th-percentile wait. */
  p99: number;
  /** The longest wait. */
  max: number;
  /** The waits counted so far (acquires served). Never decreases. */
  count: number;
  /**
   * All waits added up, unrounded (with wait sampling, an unbiased estimate). Never decreases,
   * so it can be exported as a counter: `sum / count` over an interval is that interval's mean.
   */
  sum: number;
}

/**
 * A snapshot of a pool. The invariant `created − destroyed = idle + active + validating`
 * holds in every snapshot.
 *
 * @example Read a snapshot
 * ```ts
 * import { Pool, type PoolStats } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) }, { max: 4 });
 * await Promise.all([1, 2, 3].map(() => pool.use(() => {})));
 * const s: PoolStats = pool.stats();
 * assert.equal(s.created - s.destroyed, s.idle + s.active + s.validating); // always
 * assert.equal(s.acquired, s.released); // every lease came back
 * assert.ok(s.total <= s.max && s.waiting === 0);
 * ```
 */
export interface PoolStats {
  /** Live resources: `idle + active + validating`. */
  total: number;
  /** Resources waiting in the pool. */
  idle: number;
  /** Resources leased out. */
  active: number;
  /** Resources the pool is validating or resetting. */
  validating: number;
  /** Creations in flight. */
  creating: number;
  /** Destroys in flight (still counted against `max`). */
  destroying: number;
  /** Acquires queued. */
  waiting: number;
  /** The `min` option. */
  min: number;
  /** The `max` option. */
  max: number;
  /** Leases handed out. */
  acquired: number;
  /** Leases given back (released or destroyed). */
  released: number;
  /** Resources created. */
  created: number;
  /** Resources destroyed (or being destroyed). */
  destroyed: number;
  /** Acquires that timed out. */
  timedOut: number;
  /** Acquires aborted by their signal. */
  aborted: number;
  /** Acquires refused because the wait queue was full. */
  exhausted: number;
  /** Creates that threw, returned nothing or timed out. */
  createErrors: number;
  /** Validations run (before reuse and on keepalive). */
  validations: number;
  /** Validations that returned false, threw or timed out. */
  validationFailures: number;
  /** Acquires served by an already-idle resource, over all acquires served (1 when none yet). */
  hitRate: number;
  /** Time acquires spent waiting. */
  waitMs: WaitStats;
}

const SUB = 16; // sub-buckets per power of two
const BUCKETS = SUB + 48 * SUB; // below 1 ms in 1/16 ms steps, then 2^0 … 2^47 ms

function bucketOf(ms: number): number {
  if (ms < 1) return Math.floor(ms * SUB);
  const exp = Math.floor(Math.log2(ms));
  const index = SUB + exp * SUB + Math.floor((ms / 2 ** exp - 1) * SUB);
  return index < BUCKETS ? index : BUCKETS - 1;
}

function bucketMid(index: number): number {
  if (index < SUB) return (index + 0.5) / SUB;
  const exp = Math.floor((index - SUB) / SUB);
  const sub = (index - SUB) % SUB;
  return 2 ** exp * (1 + (sub + 0.5) / SUB);
}

/** A log-linear histogram of durations in milliseconds. */
export class Histogram {
  #counts = new Uint32Array(BUCKETS);
  #n = 0;
  #sum = 0;
  #max = 0;
  #zeros = 0; // waits of 0 ms, kept apart from #counts and #n so that each costs one add

  /** Records a wait of 0 ms: the common case (an idle resource at once), kept to one add. */
  recordZero(): void {
    this.#zeros++;
  }

  /** Records one duration, standing for `weight` of them (a sampled one stands for several). */
  record(ms: number, weight = 1): void {
    if (!(ms >= 0)) ms = 0;
    this.#counts[bucketOf(ms)] += weight;
    this.#n += weight;
    this.#sum += ms * weight;
    if (ms > this.#max) this.#max = ms;
  }

  /** How many durations were recorded. */
  get count(): number {
    return this.#n + this.#zeros;
  }

  /** The value below which a share `q` (0–1) of the recordings fall, never above the max. */
  quantile(q: number): number {
    const n = this.count;
    if (n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * n));
    let seen = this.#zeros; // all in the first bucket
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return Math.min(bucketMid(i), this.#max);
    }
    return this.#max;
  }

  /** avg, p50, p99 and max rounded to microseconds; count and sum exact. */
  summary(): WaitStats {
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return {
      avg: round(this.count === 0 ? 0 : this.#sum / this.count),
      p50: round(this.quantile(0.5)),
      p99: round(this.quantile(0.99)),
      max: round(this.#max),
      count: this.count,
      sum: this.#sum,
    };
  }
}
