/**
 * The pool's background clock: one unref'd `setInterval` that runs the pool's aging pass
 * (lifetime, idle timeout, keepalive, leak detection, min upkeep) while the pool holds
 * anything, and that is stopped when it holds nothing or closes.
 *
 * It also owns the pool's notion of time. Ages are measured on the monotonic clock, shifted by
 * a skew that absorbs leaps: when a tick finds that far more time passed than one interval
 * (a laptop slept, a serverless instance was frozen), only one interval is counted, so a leap
 * neither expires every resource at once nor yields negative durations.
 *
 * @module
 */

import { cancelEvery, every, monotonicNow, type TimerHandle } from "./_timers.ts";

/** A leap is a tick that comes this much later than expected (or more). */
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

  /** `tick` runs on every interval while started. */
  constructor(intervalMs: number, tick: () => void) {
    this.#intervalMs = intervalMs;
    this.#tick = tick;
  }

  /** The pool's clock: monotonic milliseconds with leaps taken out. */
  now(): number {
    return monotonicNow() + this.#skew;
  }

  /** True while the interval runs. */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts the interval if it is not running. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#lastRaw = monotonicNow();
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
    const elapsed = raw - this.#lastRaw;
    this.#lastRaw = raw;
    if (elapsed < 0) {
      this.#skew -= elapsed; // the clock went back: stand still instead
    } else if (elapsed > this.#intervalMs + leapThresholdMs(this.#intervalMs)) {
      this.#skew -= elapsed - this.#intervalMs; // a leap counts as one interval
    }
    this.#tick();
  }
}
