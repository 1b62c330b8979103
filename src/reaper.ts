/**
 * The pool's background clock: one unref'd `setInterval` that runs the pool's aging pass
 * (lifetime, idle timeout, keepalive, leak detection, min upkeep) while the pool holds
 * anything, and that is stopped when it holds nothing or closes.
 *
 * It also owns the pool's notion of time. Ages are measured on the monotonic clock, shifted by
 * a skew that absorbs leaps: when the clock is read (by a tick, or by an acquire that runs
 * before the tick) and far more time passed since the last reading than the running interval
 * allows (a VM was paused, a serverless instance was frozen), only one interval is counted, so
 * a leap neither expires every resource at once nor yields negative durations.
 *
 * @module
 */

import { cancelEvery, every, monotonicNow, type TimerHandle } from "./_timers.ts";

/** A leap is a reading that comes this much later than the next tick was due (or more). */
export function leapThresholdMs(intervalMs: number): number {
  return Math.max(60_000, 10 * intervalMs);
}

/** The monotonic time at which a resource born `now` retires, shortened by a random jitter. */
export function retireAt(now: number, lifetimeMs: number, jitter: number): number {
  if (lifetimeMs === 0 || lifetimeMs === Infinity) return Infinity;
  return now + lifetimeMs * (1 - Math.random() * jitter);
}

/** The interval timer plus the leap-absorbing clock. */
export class Reaper {
  #intervalMs: number;
  #tick: () => void;
  #timer: TimerHandle | undefined = undefined;
  #skew = 0;
  #lastRaw = 0;
  #lastTick = 0;
  #last = 0; // the latest reading rounded up to a whole ms, for coarse()
  #coarseReads = 0;

  #onLeap: () => void;

  /** `tick` runs on every interval while started; `onLeap` when a leap was absorbed. */
  constructor(intervalMs: number, tick: () => void, onLeap: () => void = () => {}) {
    this.#intervalMs = intervalMs;
    this.#tick = tick;
    this.#onLeap = onLeap;
    this.#last = Math.ceil(monotonicNow());
  }

  /** The pool's clock: monotonic milliseconds with leaps taken out; it never runs backwards. */
  now(): number {
    const raw = monotonicNow();
    // Whoever reads the clock first after a leap absorbs it: were it left to the next tick,
    // what ran before that tick would see the leap whole and the clock would then step back.
    if (this.#timer !== undefined) {
      this.#absorb(raw);
      // Ticks long overdue mean the interval was dropped (Workers cancel a request's timers
      // when it ends): start it again, in the request that is running now.
      if (raw - this.#lastTick > 3 * this.#intervalMs) this.#restart(raw);
    }
    const reading = raw + this.#skew;
    this.#last = Math.ceil(reading);
    return reading;
  }

  /**
   * The pool's clock without reading it: the latest reading, refreshed by every tick and every
   * `now()`, so at most one interval behind while the interval runs (and read afresh every
   * 256th call, which also notices a dropped interval). Good for ages measured in seconds or
   * minutes (lifetime, idle timeout, leaks); reading the real clock costs more than a whole
   * acquire.
   * Whole milliseconds, rounded up (never behind the reading it keeps): V8 keeps a small
   * integer (below 2^30, so for a process's first 12 days) unboxed, and stamping resources
   * with one measured 10-16 ns less per acquire+release than with a fractional reading on
   * Node and Deno (the same on Bun).
   */
  coarse(): number {
    this.#coarseReads = (this.#coarseReads + 1) & 255; // stays a small integer however long it runs
    if (this.#coarseReads === 0) this.now();
    return this.#last;
  }

  /** True while the interval runs. */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts the interval if it is not running. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#lastRaw = monotonicNow();
    this.#restart(this.#lastRaw);
  }

  #restart(raw: number): void {
    if (this.#timer !== undefined) cancelEvery(this.#timer);
    this.#lastTick = raw;
    this.#timer = every(this.#intervalMs, () => this.#run());
  }

  /** Stops the interval. */
  stop(): void {
    if (this.#timer === undefined) return;
    cancelEvery(this.#timer);
    this.#timer = undefined;
  }

  #run(): void {
    const raw = monotonicNow();
    this.#absorb(raw);
    this.#lastTick = raw;
    this.#last = Math.ceil(raw + this.#skew);
    this.#tick();
  }

  /** While the interval runs, readings are at most one interval apart, unless time leapt. */
  #absorb(raw: number): void {
    const elapsed = raw - this.#lastRaw;
    this.#lastRaw = raw;
    if (elapsed < 0) {
      this.#skew -= elapsed; // the clock went back: stand still instead
    } else if (elapsed > this.#intervalMs + leapThresholdMs(this.#intervalMs)) {
      this.#skew -= elapsed - this.#intervalMs; // a leap counts as one interval
      this.#onLeap();
    }
  }
}
