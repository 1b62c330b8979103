/**
 * The pool. It owns all state: every resource is in exactly one state (idle, active, checking,
 * being destroyed) and changes state only through `#move()`, which keeps the counts, so the
 * invariant `created − destroyed = idle + active + validating` is visible in one place.
 *
 * Waiters queue FIFO and are woken by hand-off, never by polling: a release gives the
 * resource straight to the first waiter. Creation follows demand: a waiter takes whichever
 * resource frees first, and no more creates start than there are waiters to serve (or `min`
 * to keep warm).
 *
 * @module
 */

import { List, type Node } from "./_queue.ts";
import { Resource } from "./_resource.ts";
import { after, cancelAfter, keepAlive, type TimerHandle, timersAllowed } from "./_timers.ts";
import { type Deadline, DeadlineList } from "./_deadlines.ts";
import { isThenable } from "./_thenable.ts";
import {
  AcquireTimeoutError,
  describeState,
  errorText,
  PoolClosedError,
  PoolError,
  PoolExhaustedError,
} from "./errors.ts";
import { type DestroyReason, EventHub, type EventsOptions, type PoolEvent } from "./events.ts";
import {
  type HealthThresholds,
  type PoolHealth,
  poolHealth,
  type WatchOptions,
  watchStats,
} from "./health.ts";
import { Lease, revoke } from "./lease.ts";
import { type MapOptions, pooledMap } from "./map.ts";
import {
  type Factory,
  type PoolOptions,
  requireDuration,
  type ResolvedOptions,
  resolveOptions,
  type ResourceInfo,
  validateFactory,
} from "./options.ts";
import { Reaper, retireAt } from "./reaper.ts";
import type { Permit } from "./budget.ts";
import { Histogram, type PoolStats } from "./stats.ts";

/**
 * Options of {@linkcode Pool.acquire} and {@linkcode Pool.use}.
 *
 * @example Give up after a deadline, or at shutdown
 * ```ts
 * import { type AcquireOptions, AcquireTimeoutError, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) }, { max: 1 });
 * await using _held = await pool.acquire(); // the only resource: the next acquire waits
 * const shutdown = new AbortController();
 * const options: AcquireOptions = { signal: shutdown.signal, timeoutMs: 20 };
 * await assert.rejects(pool.acquire(options), AcquireTimeoutError);
 * shutdown.abort(new Error("shutting down"));
 * await assert.rejects(pool.use(() => {}, options), /shutting down/);
 * ```
 */
export interface AcquireOptions {
  /** Aborting it removes the acquire from the queue and rejects it with `signal.reason`. */
  signal?: AbortSignal;
  /** How long to wait; `Infinity` waits forever. @default {the pool's acquireTimeoutMs} */
  timeoutMs?: number;
}

/**
 * Options of {@linkcode Pool.close}.
 *
 * @example Do not wait long for leases still out
 * ```ts
 * import { type CloseOptions, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const pool = new Pool({ create: () => ({}), destroy: () => {} });
 * await pool.acquire(); // leased and never released
 * const options: CloseOptions = { timeoutMs: 20 };
 * await pool.close(options); // waits 20 ms for the lease, then destroys its resource anyway
 * assert.deepEqual([pool.stats().total, pool.stats().destroyed], [0, 1]);
 * ```
 */
export interface CloseOptions {
  /** How long to wait for outstanding leases before destroying them anyway. @default {the pool's closeTimeoutMs} */
  timeoutMs?: number;
}

/**
 * Options of {@linkcode Pool.ready}.
 *
 * @example A startup check that fails when the database is down
 * ```ts
 * import { Pool, type ReadyOptions } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
 * await using pool = new Pool({ create: () => Promise.reject(refused) }, { min: 1 });
 * const options: ReadyOptions = { timeoutMs: 100 };
 * await assert.rejects(pool.ready(options), { name: "PoolError", cause: refused });
 * ```
 */
export interface ReadyOptions {
  /** Stops waiting when aborted, rejecting with `signal.reason`. */
  signal?: AbortSignal;
  /** How long to wait for `min` resources. @default {the pool's acquireTimeoutMs} */
  timeoutMs?: number;
}

// Creation retries after errors back off exponentially from BASE to CAP, with jitter.
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 5_000;
// With nobody listening to events, a queue this long has about one acquire in WAIT_SAMPLE_SPAN
// of those queued timed, at most one in WAIT_SAMPLE_MAX (see #waitWeight).
const WAIT_SAMPLE_SPAN = 8;
const WAIT_SAMPLE_MAX = 64;
// Waiters on the pool's default acquire timeout share one timer, armed for the earliest of them,
// except on Cloudflare Workers: there a timer dies with the request that set it, so each waiter
// keeps a timer of its own, set in its own request.
const SHARED_WAIT_TIMER = (globalThis as { navigator?: { userAgent?: unknown } }).navigator
  ?.userAgent !== "Cloudflare-Workers";
// Keepalive validates at most this many idle resources per reaper tick.
const KEEPALIVE_BATCH = 4;

const RESOLVED: Promise<void> = Promise.resolve();
// Thrown inside a create when the budget had no permit: not an error of the factory.
const BUDGET_FULL: unique symbol = Symbol("budget full");

const noop = (): void => {};

class Waiter<T> implements Node<Waiter<T>> {
  prev: Waiter<T> | undefined = undefined;
  next: Waiter<T> | undefined = undefined;
  list: List<Waiter<T>> | undefined = undefined;
  /** When it times out, on the pool's clock, if it shares the pool's deadline timer; else NaN. */
  sharedDeadline = NaN;
  /** Its own timers and signal listener, if it has any (most waiters have none). */
  armed: Armed | undefined = undefined;
  resolve: (lease: Lease<T>) => void = noop;
  reject: (error: unknown) => void = noop;
  /** When it queued: exact if `weight` > 0, else the coarse clock. */
  readonly since: number;
  /** How many waits its wait stands for in the histogram; 0: not timed (see `#waitWeight`). */
  readonly weight: number;
  readonly timeoutMs: number;
  readonly origin: Error | undefined;
  constructor(
    since: number,
    weight: number,
    timeoutMs: number,
    origin: Error | undefined,
  ) {
    this.since = since;
    this.weight = weight;
    this.timeoutMs = timeoutMs;
    this.origin = origin;
  }
}

/** What a waiter holds only when it has a timer or a signal of its own. */
class Armed {
  timer: TimerHandle | undefined = undefined;
  /** Wakes the pool when work the waiter depends on is due, should that work's own timer be lost. */
  watchdog: TimerHandle | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
}

interface Deferred {
  resolve(): void;
  reject(error: unknown): void;
}

// The runtime's own class, when it has one: an instanceof check is the cheap common case.
const NativeSignal: (abstract new () => AbortSignal) | undefined = typeof AbortSignal === "function"
  ? AbortSignal
  : undefined;

function isAbortSignal(value: unknown): value is AbortSignal {
  if (NativeSignal !== undefined && value instanceof NativeSignal) return true;
  return typeof value === "object" && value !== null &&
    typeof (value as AbortSignal).aborted === "boolean" &&
    typeof (value as AbortSignal).addEventListener === "function";
}

function checkAcquireOptions(options: AcquireOptions | undefined, what: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object") {
    throw new TypeError(`${what} options must be an object, received ${String(options)}`);
  }
  if (options.signal !== undefined && !isAbortSignal(options.signal)) {
    throw new TypeError(`${what} options.signal must be an AbortSignal`);
  }
  if (options.timeoutMs !== undefined) {
    requireDuration(`${what} options.timeoutMs`, options.timeoutMs);
  }
}

/**
 * A pool of reusable resources: database connections, clients, workers.
 *
 * @example Lease a resource for a scope
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * let made = 0;
 * await using pool = new Pool({ create: () => ({ n: ++made }) }, { max: 2 });
 * {
 *   await using conn = await pool.acquire({ timeoutMs: 1_000 });
 *   assert.equal(conn.value.n, 1);
 * }
 * const n = await pool.use((conn) => conn.n); // reuses the idle resource
 * assert.equal(n, 1);
 * assert.equal(pool.stats().created, 1);
 * ```
 */
export class Pool<T> implements AsyncDisposable {
  readonly #factory: Factory<T>;
  readonly #o: ResolvedOptions;
  readonly #hub: EventHub;
  readonly #reaper: Reaper;
  readonly #giveBack = (resource: Resource<T>, broken: boolean) => this.#release(resource, broken);

  readonly #idle = new List<Resource<T>>();
  /** Every live resource (idle, active, checking), in creation order; changes on create and destroy only. */
  readonly #all = new Set<Resource<T>>();
  #activeCount = 0;
  #checkingCount = 0;
  readonly #waiters = new List<Waiter<T>>();
  #creating = 0;
  #destroying = 0;
  #validatingForAcquire = 0;
  #nextId = 1;

  // counters
  #acquired = 0;
  #released = 0;
  #created = 0;
  #destroyed = 0;
  #timedOut = 0;
  #aborted = 0;
  #exhaustedCount = 0;
  #createErrors = 0;
  #validations = 0;
  #validationFailures = 0;
  #hits = 0;
  /** The timer shared by waiters on the default timeout (see #expireShared). */
  #waitTimer: TimerHandle | undefined = undefined;
  /** Queued waiters on the shared timer. */
  #sharedWaiters = 0;
  /** Queued acquires since the last timed one: the next timed one stands for them too. */
  #untimed = 0;
  readonly #waits = new Histogram();

  #createFailures = 0; // consecutive, reset by a successful create
  #lastCreateError: unknown = undefined;
  #backoff: TimerHandle | undefined = undefined;
  #backoffUntil = 0; // enforced by #pump too, in case the timer was dropped
  /**
   * Set while the shared budget is full and someone waits: stops creates until the budget says
   * a permit freed. Held only while there are waiters (a subscription keeps the process alive).
   */
  #budgetWait: (() => void) | undefined = undefined;
  /** Ends the subscription behind #budgetWait. */
  #budgetStop: (() => void) | undefined = undefined;
  readonly #deadlines: Record<"create" | "validate" | "reset" | "destroy", DeadlineList>;
  /**
   * Whether acquires validate (validateOnAcquire with a validate hook). Returns are then timed
   * exactly, since validateBypassMs measures from them.
   */
  readonly #validates: boolean;
  // Whether the factory has these hooks, read once (see Factory): a load from a user's object
  // is polymorphic across factories of different shapes, and measured 0.1-0.2x of the floor's
  // uncontended acquire+release on V8 in a process that had seen five of them.
  readonly #resets: boolean;
  readonly #checksAlive: boolean;
  readonly #lifo: boolean;
  /** Creates in flight, each with the function that abandons it (close does not wait for them). */
  readonly #createsInFlight = new Map<AbortController, () => void>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #readyWaiters = new Set<Deferred>();
  #drained: (() => void) | undefined = undefined;
  #closed = false;
  #closing: Promise<void> | undefined = undefined;
  #ended = false; // close() finished: events() ends at once

  /**
   * Makes a pool. Nothing is created until needed, except `min` resources, which start in the
   * background at once. Throws `TypeError` for a malformed factory or option and `RangeError`
   * for an option out of range.
   */
  constructor(factory: Factory<T>, options?: PoolOptions) {
    validateFactory(factory);
    this.#factory = factory;
    this.#o = resolveOptions(options, typeof factory.validate === "function");
    if (this.#o.maxLifetimeMs === 0) this.#o.maxLifetimeMs = Infinity;
    if (this.#o.idleTimeoutMs === 0) this.#o.idleTimeoutMs = Infinity;
    this.#hub = new EventHub(this.#o.onEvent);
    // After a leap (a frozen instance, a paused VM) idle resources may have died unseen: the
    // leap is not counted as age, but each is validated before its next use.
    this.#reaper = new Reaper(this.#o.reapIntervalMs, () => this.#reap(), () => {
      for (const r of this.#idle) r.checkedAt = -Infinity;
    });
    this.#deadlines = {
      create: new DeadlineList(this.#o.createTimeoutMs),
      validate: new DeadlineList(this.#o.validateTimeoutMs),
      reset: new DeadlineList(this.#o.resetTimeoutMs),
      destroy: new DeadlineList(this.#o.destroyTimeoutMs),
    };
    this.#validates = this.#o.validateOnAcquire && factory.validate !== undefined;
    this.#resets = factory.reset !== undefined;
    this.#checksAlive = factory.isAlive !== undefined;
    this.#lifo = this.#o.idleOrder === "lifo";
    // Warm up now where timers are allowed; otherwise (Workers, at global scope) on first use.
    if (this.#o.min > 0 && timersAllowed()) this.#pump();
  }

  // ---------------------------------------------------------------- public API

  /**
   * Leases a resource: an idle one at once, a new one if below `max`, otherwise the first one
   * released after the acquires queued before this one. Rejects with `signal.reason` when
   * aborted, {@linkcode AcquireTimeoutError} past the deadline, {@linkcode PoolExhaustedError}
   * when the queue is full, and {@linkcode PoolClosedError} after `close()`.
   *
   * @example With a signal and a deadline
   * ```ts
   * import { Pool } from "@edgepool/pool";
   *
   * await using pool = new Pool({ create: () => ({}) });
   * const controller = new AbortController();
   * await using lease = await pool.acquire({ signal: controller.signal, timeoutMs: 500 });
   * ```
   */
  acquire(options?: AcquireOptions): Promise<Lease<T>> {
    // The common case first: an idle resource with nothing to decide (see #lendAtOnce).
    if (options === undefined && !this.#closed) {
      const leased = this.#lendAtOnce();
      if (leased !== undefined) return leased;
    }
    try {
      checkAcquireOptions(options, "acquire()");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) return Promise.reject(new PoolClosedError("acquire", this.stats()));
    const signal = options?.signal;
    if (signal?.aborted) {
      this.#aborted++;
      if (this.#hub.active) {
        this.#hub.emit({ type: "abort", time: Date.now(), waitedMs: 0, reason: signal.reason });
      }
      return Promise.reject(signal.reason);
    }
    if (options !== undefined) {
      const leased = this.#lendAtOnce(); // a signal or a deadline does not matter to it
      if (leased !== undefined) return leased;
    }
    // Captured here, while the caller is still on the stack, and only when someone will read it;
    // formatting its stack is the costly part, left until a leak is reported.
    const origin = this.#o.leakDetectionMs > 0 && this.#hub.active
      ? new Error("acquired here")
      : undefined;

    let resource: Resource<T> | undefined;
    if (this.#waiters.size === 0 && (resource = this.#takeIdle()) !== undefined) {
      if (!this.#needsValidation(resource)) {
        return Promise.resolve(this.#lend(resource, 0, 1, true, origin, this.#leaseClock()));
      }
    } else if (this.#waiters.size >= this.#o.maxWaiting && this.#footprint() >= this.#o.max) {
      this.#exhaustedCount++;
      if (this.#hub.active) {
        this.#hub.emit({ type: "exhausted", time: Date.now(), waiting: this.#waiters.size });
      }
      return Promise.reject(new PoolExhaustedError(this.#o.maxWaiting, this.stats()));
    }

    return this.#enqueue(options?.timeoutMs ?? this.#o.acquireTimeoutMs, signal, origin, resource);
  }

  /**
   * Lends an idle resource at once when there is nothing to decide: nobody waiting or
   * listening, no check before reuse, and the resource not in the last reaper interval of its
   * life (measured: 10-35 ns less per uncontended acquire+release on all three runtimes than
   * the full path, which takes everything else, a resource near its lifetime included).
   */
  #lendAtOnce(): Promise<Lease<T>> | undefined {
    if (
      this.#waiters.size !== 0 || this.#hub.active || this.#validates || this.#checksAlive
    ) {
      return undefined;
    }
    const r = this.#lifo ? this.#idle.tail : this.#idle.head;
    if (r === undefined) return undefined;
    const now = this.#reaper.coarse();
    if (!this.#farFromExpiry(r, now)) return undefined;
    this.#move(r, "active");
    this.#hits++;
    this.#waits.recordZero();
    return Promise.resolve(this.#lease(r, undefined, now));
  }

  /**
   * Queues an acquire. Apart from acquire() so that no closure is made on the way to an idle
   * resource: a function whose variables a closure captures allocates their context on entry.
   */
  #enqueue(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    origin: Error | undefined,
    resource: Resource<T> | undefined,
  ): Promise<Lease<T>> {
    const weight = this.#waitWeight();
    const since = weight > 0 ? this.#reaper.now() : this.#reaper.coarse();
    const waiter = new Waiter<T>(since, weight, timeoutMs, origin);
    const promise = new Promise<Lease<T>>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    this.#waiters.push(waiter);
    try {
      this.#arm(waiter, signal, resource);
    } catch (error) {
      // A timer refused (Workers at global scope) or a signal that would not take a listener.
      this.#settleWaiter(waiter);
      waiter.reject(error);
    }
    return promise;
  }

  /** Arms a queued waiter's deadline and signal, then starts whatever can serve it. */
  #arm(waiter: Waiter<T>, signal: AbortSignal | undefined, resource: Resource<T> | undefined) {
    const timeoutMs = waiter.timeoutMs;
    if (SHARED_WAIT_TIMER && timeoutMs === this.#o.acquireTimeoutMs && timeoutMs !== Infinity) {
      // Same length, so queue order is deadline order: the timer is armed for the first one.
      waiter.sharedDeadline = (waiter.weight > 0 ? waiter.since : this.#reaper.now()) + timeoutMs;
      this.#sharedWaiters++;
      if (this.#waitTimer === undefined) this.#armWaitTimer(timeoutMs);
    } else if (timeoutMs !== Infinity) {
      this.#armOwnTimer(waiter, timeoutMs);
    }
    if (signal) this.#listen(waiter, signal);
    if (resource) this.#validate(resource, true);
    // At max with nothing idle and none of the pool's own work pending (the steady state of a
    // busy pool), the waiter can only be served by a release: there is nothing to start.
    else if (
      this.#idle.size === 0 && this.#pendingWork === 0 && this.#footprint() >= this.#o.max
    ) {
      return;
    }
    // A backoff armed for min upkeep alone is unref'd; a waiter now depends on it.
    if (this.#backoff !== undefined) keepAlive(this.#backoff);
    this.#pump();
    if (waiter.list === this.#waiters) this.#watch(waiter);
  }

  // The closures live in these two so that #arm, run for every queued acquire, captures
  // nothing: a function whose variables a closure captures allocates their context on entry.
  #armOwnTimer(waiter: Waiter<T>, timeoutMs: number): void {
    (waiter.armed ??= new Armed()).timer = after(timeoutMs, () => this.#expire(waiter));
  }

  #listen(waiter: Waiter<T>, signal: AbortSignal): void {
    const armed = waiter.armed ??= new Armed();
    armed.signal = signal;
    armed.onAbort = () => this.#abandon(waiter);
    signal.addEventListener("abort", armed.onAbort, { once: true });
  }

  /**
   * Runs `fn` with a leased resource and always gives it back: released when `fn` settles, or
   * destroyed when `fn` threw and `factory.isBroken(value, error)` says the error broke it.
   *
   * @example
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool({ create: () => ({ base: 40 }) });
   * assert.equal(await pool.use(async (r) => r.base + 2), 42);
   * ```
   */
  async use<R>(fn: (value: T) => R | Promise<R>, options?: AcquireOptions): Promise<R> {
    if (typeof fn !== "function") {
      throw new TypeError(`use() needs a function, received ${typeof fn}`);
    }
    const lease = await this.acquire(options);
    let result: R;
    try {
      result = await fn(lease.value);
    } catch (error) {
      let broken = false;
      try {
        broken = this.#factory.isBroken?.(lease.value, error) === true;
      } catch {
        broken = true; // a throwing isBroken cannot vouch for the resource
      }
      await (broken ? lease.destroy() : lease.release());
      throw error;
    }
    // A release handed straight on (no reset hook) is already done: awaiting its settled
    // promise would only cost another turn of the microtask queue on every call.
    const released = lease.release();
    if (released !== RESOLVED) await released;
    return result;
  }

  /**
   * A fresh snapshot of the pool's counters.
   *
   * @example
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool({ create: () => ({}) }, { max: 3 });
   * const lease = await pool.acquire();
   * const s = pool.stats();
   * assert.deepEqual([s.active, s.idle, s.max], [1, 0, 3]);
   * assert.equal(s.created - s.destroyed, s.idle + s.active + s.validating);
   * await lease.release();
   * ```
   */
  stats(): PoolStats {
    const served = this.#acquired;
    return {
      total: this.#live(),
      idle: this.#idle.size,
      active: this.#activeCount,
      validating: this.#checkingCount,
      creating: this.#creating,
      destroying: this.#destroying,
      waiting: this.#waiters.size,
      min: this.#o.min,
      max: this.#o.max,
      acquired: this.#acquired,
      released: this.#released,
      created: this.#created,
      destroyed: this.#destroyed,
      timedOut: this.#timedOut,
      aborted: this.#aborted,
      exhausted: this.#exhaustedCount,
      createErrors: this.#createErrors,
      validations: this.#validations,
      validationFailures: this.#validationFailures,
      hitRate: served === 0 ? 1 : this.#hits / served,
      waitMs: this.#waits.summary(),
    };
  }

  /**
   * Resolves once `min` resources exist (at once when they do). Rejects with a
   * {@linkcode PoolError} whose `cause` is the last create error if they do not within the
   * deadline, with `signal.reason` when aborted, and with {@linkcode PoolClosedError} on close.
   *
   * @example
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool({ create: () => ({}) }, { min: 2 });
   * await pool.ready();
   * assert.equal(pool.stats().idle, 2);
   * ```
   */
  ready(options?: ReadyOptions): Promise<void> {
    try {
      checkAcquireOptions(options, "ready()");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) return Promise.reject(new PoolClosedError("get ready", this.stats()));
    if (this.#live() >= this.#o.min) return RESOLVED;
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.#pump(); // warm-up deferred by the constructor (no timers at global scope) starts here
    const timeoutMs = options?.timeoutMs ?? this.#o.acquireTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const onAbort = () => settle(signal!.reason);
      const settle = (error?: unknown) => {
        this.#readyWaiters.delete(deferred);
        if (this.#budgetWait !== undefined) this.#leaveBudgetWait();
        if (timer !== undefined) cancelAfter(timer);
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
      const deferred: Deferred = { resolve: () => settle(), reject: settle };
      this.#readyWaiters.add(deferred);
      // A backoff armed for min upkeep alone is unref'd; a caller now waits on it.
      if (this.#backoff !== undefined) keepAlive(this.#backoff);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== Infinity) {
        timer = after(timeoutMs, () => {
          const failing = this.#createFailures > 0 ? this.#lastCreateError : undefined;
          const why = failing === undefined ? "" : `; last create error: ${errorText(failing)}`;
          settle(
            new PoolError(
              `not ready after ${timeoutMs} ms: ${this.#live()} of min ${this.#o.min} resources exist${why}`,
              { cause: failing, stats: this.stats() },
            ),
          );
        });
      }
    });
  }

  /**
   * Pool activity as an async iterable of {@linkcode PoolEvent}s. Each subscriber has its own
   * bounded buffer; `break`, `return()`, the signal or `close()` ends it.
   *
   * @example
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * const pool = new Pool({ create: () => ({}) });
   * const events = pool.events();
   * await pool.use(() => {});
   * await pool.close();
   * const types = [];
   * for await (const event of events) types.push(event.type);
   * assert.deepEqual(types, ["create", "acquire", "release", "destroy", "close"]);
   * ```
   */
  events(options?: EventsOptions): AsyncIterableIterator<PoolEvent> {
    const iterator = this.#hub.subscribe(options);
    if (this.#ended) void iterator.return?.();
    return iterator;
  }

  /**
   * Maps `source` (any iterable or async iterable) through `fn`, each call with a leased
   * resource, at most `min(concurrency, max)` at once, reading the source only as fast as the
   * results are read. Results come in source order unless `ordered: false`. An error from `fn`
   * ends the iteration with that error; `break` ends it quietly; the signal ends it with
   * `signal.reason`: each way the `signal` given to `fn` aborts, every lease comes back before
   * the iteration ends, and the source's `return()` is called.
   *
   * @example Fetch rows two at a time, in order
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool({ create: () => ({ query: async (id: number) => ({ id }) }) });
   * const rows = [];
   * for await (const row of pool.map([1, 2, 3], (db, id) => db.query(id), { concurrency: 2 })) {
   *   rows.push(row.id);
   * }
   * assert.deepEqual(rows, [1, 2, 3]);
   * assert.equal(pool.stats().active, 0);
   * ```
   */
  map<I, R>(
    source: Iterable<I> | AsyncIterable<I>,
    fn: (value: T, item: I, signal: AbortSignal) => R | Promise<R>,
    options?: MapOptions,
  ): AsyncIterableIterator<R> {
    return pooledMap(this, source, fn, options);
  }

  /**
   * Stats snapshots every `intervalMs`, the first at once, until `break`, the signal, or the
   * pool has closed. Its interval is unref'd and cleared when the iteration ends.
   *
   * @example
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool({ create: () => ({}) }, { min: 2 });
   * await pool.ready();
   * for await (const stats of pool.watch({ intervalMs: 5_000 })) {
   *   assert.equal(stats.idle, 2);
   *   break;
   * }
   * ```
   */
  watch(options: WatchOptions): AsyncIterableIterator<PoolStats> {
    return watchStats(this, options);
  }

  /**
   * A verdict on the pool now: `healthy`, `utilization`, wait times, hit rate and the
   * `alerts` raised against `thresholds` (exhausted, high utilization, slow waits, low hit
   * rate, create errors, validation failures).
   *
   * @example
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool({ create: () => ({}) }, { max: 1 });
   * const lease = await pool.acquire();
   * const health = pool.health();
   * assert.equal(health.healthy, false);
   * assert.equal(health.alerts[0].code, "high-utilization"); // 1 of max 1 in use
   * await lease.release();
   * assert.equal(pool.health().healthy, true);
   * ```
   */
  health(thresholds?: HealthThresholds): PoolHealth {
    return poolHealth(this.stats(), thresholds);
  }

  /**
   * Retires resources (HikariCP's soft eviction, e.g. after a failover): idle matches are
   * destroyed now, leased ones when released. Without a predicate, every resource. Resolves
   * with how many were evicted, once the idle ones are destroyed.
   *
   * @example
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * await using pool = new Pool({ create: () => ({}) }, { min: 2 });
   * await pool.ready();
   * assert.equal(await pool.evict((_value, info) => info.uses === 0), 2);
   * ```
   */
  async evict(predicate?: (value: T, info: ResourceInfo) => boolean): Promise<number> {
    if (predicate !== undefined && typeof predicate !== "function") {
      throw new TypeError(`evict() takes a predicate function, received ${typeof predicate}`);
    }
    const matches = (r: Resource<T>) => predicate === undefined || predicate(r.value, r) === true;
    // Choose first, then act: a predicate that throws halfway evicts nothing.
    const idle = [...this.#idle].filter(matches);
    const busy = [...this.#all].filter((r) => r.state !== "idle" && !r.evicted && matches(r));
    for (const r of busy) r.evicted = true;
    await Promise.all(idle.map((r) => this.#destroy(r, "evicted")));
    this.#pump();
    return idle.length + busy.length;
  }

  /**
   * Closes the pool: refuses new acquires, rejects every waiter with
   * {@linkcode PoolClosedError}, waits for outstanding leases (up to `timeoutMs`, then destroys
   * them anyway), destroys idle resources, and awaits every destroy. Leaves no timer or listener
   * behind. Calling it again returns the same promise.
   *
   * @example
   * ```ts
   * import { Pool } from "@edgepool/pool";
   * import assert from "node:assert/strict";
   *
   * const pool = new Pool({ create: () => ({}), destroy: () => {} }, { min: 1 });
   * await pool.ready();
   * await pool.close({ timeoutMs: 1_000 });
   * assert.equal(pool.stats().total, 0);
   * ```
   */
  close(options?: CloseOptions): Promise<void> {
    if (this.#closing) return this.#closing;
    let timeoutMs = this.#o.closeTimeoutMs;
    try {
      if (options !== undefined && (options === null || typeof options !== "object")) {
        throw new TypeError(`close() options must be an object, received ${String(options)}`);
      }
      if (options?.timeoutMs !== undefined) {
        timeoutMs = requireDuration("close() options.timeoutMs", options.timeoutMs);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    this.#closing = this.#shutdown(timeoutMs);
    return this.#closing;
  }

  /** Same as {@linkcode Pool.close} with default options: what `await using` calls. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  // ---------------------------------------------------------------- state moves

  /**
   * The single place where a resource changes state (and the counts and idle list follow), but
   * for the plain return of a lease to idle, which #release makes itself.
   */
  #move(r: Resource<T>, to: "idle" | "active" | "checking" | "destroying"): void {
    const from = r.state;
    if (from === to) return; // a hand-off from lease to lease
    if (from === "idle") this.#idle.remove(r);
    else if (from === "active") this.#activeCount--;
    else if (from === "checking") this.#checkingCount--;
    else if (from === "new") this.#all.add(r);
    r.state = to;
    if (to === "idle") this.#idle.push(r);
    else if (to === "active") this.#activeCount++;
    else if (to === "checking") this.#checkingCount++;
    else this.#all.delete(r);
  }

  #live(): number {
    return this.#idle.size + this.#activeCount + this.#checkingCount;
  }

  /** Everything counted against `max`: live, being created, being destroyed. */
  #footprint(): number {
    return this.#live() + this.#creating + this.#destroying;
  }

  /**
   * Whether `r` is past its lifetime. The coarse clock lags the real one by at most an
   * interval, so only a resource in the last interval of its life costs a real clock read.
   */
  #expired(r: Resource<T>, coarse: number = this.#reaper.coarse()): boolean {
    if (this.#farFromExpiry(r, coarse)) return false;
    return r.expiresAt <= this.#reaper.now();
  }

  /** True when `r` is not in the last reaper interval of its life, by the coarse clock. */
  #farFromExpiry(r: Resource<T>, coarse: number): boolean {
    return r.expiresAt > coarse + this.#o.reapIntervalMs;
  }

  #takeIdle(): Resource<T> | undefined {
    let r: Resource<T> | undefined;
    while ((r = this.#lifo ? this.#idle.tail : this.#idle.head) !== undefined) {
      if (this.#expired(r)) {
        void this.#destroy(r, "lifetime");
        continue;
      }
      if (this.#checksAlive && !this.#isAlive(r)) {
        this.#validationFailures++;
        if (this.#hub.active) this.#hub.emit({ type: "validate-fail", time: Date.now(), id: r.id });
        void this.#destroy(r, "invalid");
        continue;
      }
      r.fromIdle = true;
      return r;
    }
    return undefined;
  }

  #isAlive(r: Resource<T>): boolean {
    try {
      const isAlive = this.#factory.isAlive;
      return isAlive === undefined || isAlive.call(this.#factory, r.value) !== false;
    } catch {
      return false; // a check that throws cannot vouch for the resource
    }
  }

  #needsValidation(r: Resource<T>): boolean {
    return this.#validates && this.#reaper.now() - r.checkedAt >= this.#o.validateBypassMs;
  }

  /**
   * The time a lease starts: exact when someone will see how long it was held, coarse
   * otherwise (it then only ages leases for leak detection, in seconds).
   */
  #leaseClock(): number {
    return this.#hub.active ? this.#reaper.now() : this.#reaper.coarse();
  }

  /**
   * How many waits the wait of an acquire queuing now stands for in the histogram (0: not
   * timed). Two clock reads cost more than the whole hand-off (a clock read is 40-120 ns), so
   * when the queue is long and nobody listens to events, about WAIT_SAMPLE_SPAN acquires per
   * queue length are timed, each standing for those queued since the previous timed one: every
   * wait is counted once and the percentiles stay unbiased estimates. A queue shorter than
   * 2 × WAIT_SAMPLE_SPAN (and every acquire served at once, as a 0 ms wait) is timed exactly.
   */
  #waitWeight(): number {
    if (this.#hub.active) return 1;
    const every = Math.min(WAIT_SAMPLE_MAX, Math.floor(this.#waiters.size / WAIT_SAMPLE_SPAN));
    const weight = this.#untimed + 1;
    if (weight < every) {
      this.#untimed = weight;
      return 0;
    }
    this.#untimed = 0;
    return weight;
  }

  /** Hands `r` out as a lease that starts at `now`; `weight` 0 leaves the wait unrecorded. */
  #lend(
    r: Resource<T>,
    waitedMs: number,
    weight: number,
    hit: boolean,
    origin: Error | undefined,
    now: number,
  ): Lease<T> {
    this.#move(r, "active");
    r.fromIdle = false;
    const lease = this.#lease(r, origin, now);
    if (hit) this.#hits++;
    if (weight === 1 && waitedMs === 0) this.#waits.recordZero();
    else if (weight > 0) this.#waits.record(waitedMs, weight);
    if (this.#hub.active) {
      this.#hub.emit({ type: "acquire", time: Date.now(), id: r.id, waitedMs, hit });
    }
    return lease;
  }

  /**
   * A new lease on an active resource: what every lend does, and all that the quiet hand-off
   * in #release needs (no hit, no wait to record, nobody to tell).
   */
  #lease(r: Resource<T>, origin: Error | undefined, now: number): Lease<T> {
    r.uses++;
    r.acquiredAt = now;
    r.leakReported = false;
    r.origin = origin;
    this.#acquired++;
    const lease = new Lease(r, this.#giveBack);
    r.lease = lease;
    return lease;
  }

  #settleWaiter(w: Waiter<T>): void {
    this.#waiters.remove(w);
    if (this.#budgetWait !== undefined) this.#leaveBudgetWait();
    if (!Number.isNaN(w.sharedDeadline) && --this.#sharedWaiters === 0) {
      this.#disarmWaitTimer(); // nobody left on it: an idle pool holds no timer
    }
    const armed = w.armed;
    if (armed === undefined) return;
    if (armed.timer !== undefined) cancelAfter(armed.timer);
    if (armed.watchdog !== undefined) cancelAfter(armed.watchdog);
    if (armed.onAbort) armed.signal!.removeEventListener("abort", armed.onAbort);
  }

  /** A resource became available: to the first waiter, else idle. */
  #offer(r: Resource<T>, checked = false, clock?: number): void {
    if (!checked) {
      if (this.#closed) return void this.#destroy(r, "close");
      if (r.evicted) return void this.#destroy(r, "evicted");
      if (this.#expired(r)) return void this.#destroy(r, "lifetime");
    }
    const w = this.#waiters.head;
    if (w) {
      this.#settleWaiter(w);
      const now = w.weight > 0 ? this.#reaper.now() : clock ?? this.#leaseClock();
      w.resolve(this.#lend(r, Math.max(0, now - w.since), w.weight, r.fromIdle, w.origin, now));
    } else {
      r.fromIdle = false;
      this.#move(r, "idle");
    }
  }

  /** Serves waiters from idle, then starts the creates that demand and `min` call for. */
  #pump(): void {
    if (this.#closed) return;
    this.#sweep();
    while (this.#waiters.size > this.#validatingForAcquire && this.#idle.size > 0) {
      const r = this.#takeIdle();
      if (r === undefined) break;
      if (this.#needsValidation(r)) this.#validate(r, true);
      else this.#offer(r);
    }
    if (this.#budgetWait !== undefined) return;
    if (this.#backoff !== undefined) {
      if (this.#reaper.now() < this.#backoffUntil) return;
      cancelAfter(this.#backoff); // overdue: its timer was dropped
      this.#backoff = undefined;
    }
    let need = Math.max(
      this.#waiters.size - this.#creating - this.#checkingCount,
      this.#o.min - this.#live() - this.#creating,
    );
    while (
      need-- > 0 && this.#footprint() < this.#o.max &&
      this.#creating < this.#o.createConcurrency
    ) this.#create();
  }

  /**
   * When a waiter queues behind the pool's own work (a create, a backoff, a validation, a
   * reset) that is due before the waiter gives up, it arms a timer of its own for that moment.
   * Where timers live as long as the process this is redundant; where they die with the
   * request that set them (Workers), it is what gets the pool going again. Armed only while
   * such work is pending, so the steady state costs nothing.
   */
  #watch(w: Waiter<T>): void {
    const d = this.#deadlines;
    let at = Math.min(
      d.create.earliest,
      d.validate.earliest,
      d.reset.earliest,
      d.destroy.earliest,
    );
    if (this.#backoff !== undefined && this.#backoffUntil < at) at = this.#backoffUntil;
    if (at === Infinity) return;
    const inMs = Math.max(0, at - this.#reaper.now()) + 1;
    if (inMs >= w.timeoutMs) return; // the waiter gives up first
    const armed = w.armed ??= new Armed();
    armed.watchdog = after(inMs, () => {
      armed.watchdog = undefined;
      this.#pump();
    });
  }

  /** Deadlines armed for the pool's own work, plus a pending backoff or budget wait. */
  get #pendingWork(): number {
    const d = this.#deadlines;
    return d.create.size + d.validate.size + d.reset.size + d.destroy.size +
      (this.#backoff === undefined ? 0 : 1) + (this.#budgetWait === undefined ? 0 : 1);
  }

  /** Enforces the deadlines of the pool's own work whose timers did not fire. */
  #sweep(): void {
    const d = this.#deadlines;
    if (d.create.size + d.validate.size + d.reset.size + d.destroy.size === 0) return;
    const now = this.#reaper.now();
    d.create.sweep(now);
    d.validate.sweep(now);
    d.reset.sweep(now);
    d.destroy.sweep(now);
  }

  #track(p: Promise<unknown>): void {
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  // ---------------------------------------------------------------- lifecycle of a resource

  #create(): void {
    this.#creating++;
    const started = this.#reaper.now();
    const controller = new AbortController();
    let done = false;
    let deadline: Deadline | undefined;
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      this.#createsInFlight.delete(controller);
      this.#deadlines.create.disarm(deadline);
      this.#creating--;
      if (this.#closed) this.#checkDrained();
      return true;
    };
    let permit: Permit | undefined;
    let resource: Resource<T> | undefined;
    let lost = false;
    const budget = this.#o.budget;
    let pending: Promise<T>;
    if (budget === undefined) {
      try {
        pending = Promise.resolve(this.#factory.create(controller.signal));
      } catch (error) {
        pending = Promise.reject(error);
      }
    } else {
      // The budget revoked the permit: the resource retires (idle now, leased on release).
      const onLost = () => {
        lost = true;
        if (resource === undefined) return;
        resource.evicted = true;
        if (resource.state === "idle") void this.#destroy(resource, "evicted");
      };
      // A budget that throws, or gives something other than a permit, fails this create like a
      // rejection would: #creating was counted, and only settling the create uncounts it.
      let asked: Promise<Permit | undefined>;
      try {
        asked = budget.tryAcquire(controller.signal, onLost);
      } catch (error) {
        asked = Promise.reject(error);
      }
      // A native promise as it is: no tick added between its answer and #waitForBudget.
      pending = Promise.resolve(asked).then((granted) => {
        if (granted === undefined) throw BUDGET_FULL;
        if (typeof (granted as Partial<Permit> | null)?.release !== "function") {
          throw new TypeError(
            `budget.tryAcquire() must resolve with a permit or undefined, received ${typeof granted}`,
          );
        }
        permit = granted;
        return this.#factory.create(controller.signal);
      });
    }
    const giveBack = () => {
      const p = permit;
      permit = undefined;
      if (p !== undefined) this.#returnPermit(p);
    };
    const work = new Promise<void>((settled) => {
      this.#createsInFlight.set(controller, () => {
        finish();
        settled();
      });
      deadline = this.#deadlines.create.arm(started, () => {
        const error = this.#hookTimeout("create", this.#o.createTimeoutMs);
        controller.abort(error);
        if (finish()) this.#createFailed(error);
        settled();
      });
      pending.then(
        (value) => {
          if (value === undefined || value === null) {
            giveBack();
            if (finish()) {
              this.#createFailed(
                new TypeError(`factory.create() returned ${value}; it must return a resource`),
              );
            }
          } else if (finish()) {
            this.#created++;
            this.#createFailures = 0;
            const now = this.#reaper.now();
            const r = new Resource<T>(
              this.#nextId++,
              value,
              now,
              retireAt(now, this.#o.maxLifetimeMs, this.#o.lifetimeJitter),
            );
            r.permit = permit;
            r.evicted = lost;
            resource = r;
            this.#move(r, "checking"); // counted live before it is offered
            if (this.#hub.active) {
              this.#hub.emit({ type: "create", time: Date.now(), id: r.id, tookMs: now - started });
            }
            this.#reaper.start();
            this.#offer(r);
            this.#checkReady();
            this.#pump();
          } else {
            this.#discard(value, giveBack); // arrived after its timeout
          }
          settled();
        },
        (error) => {
          giveBack();
          if (error === BUDGET_FULL) {
            if (finish()) this.#waitForBudget();
          } else if (finish()) this.#createFailed(error);
          settled();
        },
      );
    });
    this.#track(work);
  }

  #createFailed(error: unknown): void {
    if (this.#closed) return; // aborted by close(): not a failure of the factory
    this.#createErrors++;
    this.#createFailures++;
    this.#lastCreateError = error;
    if (this.#hub.active) {
      this.#hub.emit({
        type: "create-error",
        time: Date.now(),
        error,
        attempt: this.#createFailures,
      });
    }
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (this.#createFailures - 1));
    this.#retryLater(ceiling / 2 + Math.random() * ceiling / 2);
  }

  /** No creates for `delay` ms, then #pump: after a create error, or a full budget. */
  #retryLater(delay: number): void {
    // A listener may have closed the pool: a closed pool arms no timer.
    if (this.#backoff !== undefined || this.#closed) return;
    this.#backoffUntil = this.#reaper.now() + delay;
    // Only waiters (of acquire() or ready()) justify keeping the process alive; min upkeep
    // alone does not.
    this.#backoff = after(delay, () => {
      this.#backoff = undefined;
      this.#pump();
    }, this.#waiters.size === 0 && this.#readyWaiters.size === 0);
  }

  /** Destroys a value whose create was abandoned; it never counted as a resource. */
  #discard(value: T, then: () => void): void {
    const info: ResourceInfo = { id: 0, createdAt: Date.now(), lastUsedAt: Date.now(), uses: 0 };
    this.#track(
      this.#runHook("destroy", this.#o.destroyTimeoutMs, () => this.#factory.destroy?.(value, info))
        .catch(() => {})
        .then(then),
    );
  }

  /** Gives a budget permit back; a failing release is the budget's to recover (its expiry). */
  #returnPermit(permit: Permit): void {
    try {
      const released = permit.release();
      if (isThenable(released)) this.#track(Promise.resolve(released).catch(() => {}));
    } catch {
      // ignored: see above
    }
  }

  /**
   * The shared budget is full: no creates until it says a permit may have freed. Only waiters
   * (of acquire() or ready()) are worth a subscription, which keeps the process alive (the
   * budget polls); min upkeep alone retries on the pool's own unref'd timer instead.
   */
  #waitForBudget(): void {
    if (this.#budgetWait !== undefined || this.#closed) return;
    if (this.#waiters.size === 0 && this.#readyWaiters.size === 0) {
      return this.#retryLater(this.#o.reapIntervalMs);
    }
    const resume = () => {
      if (this.#budgetWait !== resume) return;
      this.#stopBudgetWait();
      this.#pump();
    };
    this.#budgetWait = resume;
    let stop: (() => void) | undefined;
    try {
      stop = this.#o.budget!.onAvailable(resume);
    } catch (error) {
      this.#budgetWait = undefined;
      this.#createFailed(error);
    }
    if (this.#budgetWait === resume) this.#budgetStop = stop;
    else stop?.(); // it fired at once
  }

  /** The last waiter left (served, timed out, aborted): stop waiting on the budget. */
  #leaveBudgetWait(): void {
    if (this.#waiters.size > 0 || this.#readyWaiters.size > 0) return;
    this.#stopBudgetWait();
    if (this.#live() + this.#creating < this.#o.min) this.#retryLater(this.#o.reapIntervalMs);
  }

  #stopBudgetWait(): void {
    const stop = this.#budgetStop;
    this.#budgetWait = this.#budgetStop = undefined;
    stop?.();
  }

  #validate(r: Resource<T>, forAcquire: boolean): void {
    this.#validations++;
    this.#move(r, "checking");
    if (forAcquire) this.#validatingForAcquire++;
    const controller = new AbortController();
    const check = this.#runHook(
      "validate",
      this.#o.validateTimeoutMs,
      () => {
        const validate = this.#factory.validate; // removed since: nothing to check
        return validate === undefined ||
          validate.call(this.#factory, r.value, controller.signal, r);
      },
      controller,
    );
    const settle = (ok: boolean, error?: unknown) => {
      if (forAcquire) this.#validatingForAcquire--;
      if (r.state !== "checking") return; // closed or evicted meanwhile
      if (ok) {
        r.checkedAt = this.#reaper.now();
        this.#offer(r);
      } else {
        this.#validationFailures++;
        if (this.#hub.active) {
          this.#hub.emit({ type: "validate-fail", time: Date.now(), id: r.id, error });
        }
        void this.#destroy(r, "invalid", error);
      }
      this.#pump();
    };
    this.#track(check.then((ok) => settle(ok !== false), (error) => settle(false, error)));
  }

  /** A lease ended: reuse the resource, or destroy it. */
  #release(r: Resource<T>, broken: boolean): Promise<void> {
    // The common case, with nothing to decide: nobody listens, no reset hook, no validation
    // timing, the resource not retiring. It goes straight to the first waiter, or back to idle
    // in one step, with the one state move #move does not make (measured: 0.1-0.2x of the
    // floor's uncontended acquire+release on Bun, less on V8; 0.03-0.08x contended).
    // Everything else takes the full path.
    if (
      !broken && r.state === "active" && !this.#hub.active &&
      !this.#validates && !this.#closed && !r.evicted && !this.#resets &&
      r.uses < this.#o.maxUses
    ) {
      const now = this.#reaper.coarse();
      if (this.#farFromExpiry(r, now)) {
        r.lease = r.origin = undefined;
        this.#released++;
        r.returnedAt = r.checkedAt = now;
        const w = this.#waiters.head;
        if (w !== undefined) {
          if (w.weight === 0 && w.armed === undefined && Number.isNaN(w.sharedDeadline)) {
            // A plain waiter (no timer, no signal, its wait not timed: most of a long queue)
            // needs nothing from #offer but its lease (measured: 0.05-0.1x of the floor less
            // contended, on all three runtimes).
            this.#waiters.remove(w);
            if (this.#budgetWait !== undefined) this.#leaveBudgetWait();
            w.resolve(this.#lease(r, w.origin, now));
          } else {
            this.#offer(r, true, now); // the checks #offer would make were just made
          }
          return RESOLVED;
        }
        r.state = "idle"; // fromIdle is already false: #lend cleared it
        this.#activeCount--;
        this.#idle.push(r);
        return RESOLVED;
      }
    }
    return this.#releaseFully(r, broken);
  }

  /** The full decision: events, retirement, the reset hook, then a waiter or idle. */
  #releaseFully(r: Resource<T>, broken: boolean): Promise<void> {
    if (r.state !== "active") return RESOLVED; // revoked by close
    r.lease = undefined;
    this.#released++;
    // Exact when it is observable: events, or validateBypassMs counting from the return.
    const listened = this.#hub.active;
    const now = listened || this.#validates ? this.#reaper.now() : this.#reaper.coarse();
    if (listened) {
      const heldMs = Math.max(0, now - r.acquiredAt);
      this.#hub.emit({ type: "release", time: Date.now(), id: r.id, heldMs });
      if (r.leakReported) this.#hub.emit({ type: "unleaked", time: Date.now(), id: r.id, heldMs });
    }
    r.origin = undefined;
    let reason: DestroyReason | undefined;
    if (broken) reason = "error";
    else if (this.#closed) reason = "close";
    else if (r.evicted) reason = "evicted";
    else if (r.uses >= this.#o.maxUses) reason = "max-uses";
    else if (this.#expired(r, now)) reason = "lifetime";
    if (reason !== undefined) return this.#destroy(r, reason);
    r.returnedAt = r.checkedAt = now;
    const reset = this.#resets ? this.#factory.reset : undefined;
    let outcome: unknown;
    if (reset !== undefined) {
      try {
        outcome = reset.call(this.#factory, r.value, r);
      } catch (error) {
        return this.#destroy(r, "error", error);
      }
    }
    // No hook, or one that finished at once: the resource goes on now, in this call. #release
    // just made #offer's checks, but a hook may have closed the pool or evicted the resource.
    if (!isThenable(outcome)) {
      this.#offer(r, reset === undefined, now);
      return RESOLVED;
    }
    return this.#awaitReset(r, outcome);
  }

  /** Apart from #releaseFully, so that a release with no async reset makes no closure context. */
  #awaitReset(r: Resource<T>, outcome: PromiseLike<unknown>): Promise<void> {
    this.#move(r, "checking");
    const work = this.#runHook("reset", this.#o.resetTimeoutMs, () => outcome)
      .then(
        () => {
          if (r.state === "checking") this.#offer(r);
          this.#pump();
        },
        (error) => {
          if (r.state === "checking") return this.#destroy(r, "error", error);
        },
      );
    this.#track(work);
    return work;
  }

  /** Takes `r` out of service and calls `factory.destroy`, bounded; never rejects. */
  #destroy(r: Resource<T>, reason: DestroyReason, error?: unknown): Promise<void> {
    if (r.state === "destroying" || r.state === "gone") return RESOLVED;
    if (r.lease) {
      r.lease[revoke](); // close timed out on it: the lease ends here
      r.lease = undefined;
      this.#released++;
    }
    this.#move(r, "destroying");
    this.#destroying++;
    this.#destroyed++;
    if (this.#hub.active) {
      this.#hub.emit({ type: "destroy", time: Date.now(), id: r.id, reason, error });
    }
    const work = this.#runHook(
      "destroy",
      this.#o.destroyTimeoutMs,
      () => this.#factory.destroy?.(r.value, r),
    )
      .catch(() => {}) // a failing destroy still frees the slot
      .then(() => {
        if (r.permit !== undefined) {
          this.#returnPermit(r.permit);
          r.permit = undefined;
        }
        r.state = "gone";
        this.#destroying--;
        if (this.#closed) this.#checkDrained();
        else this.#pump();
        if (this.#footprint() === 0) this.#reaper.stop();
      });
    this.#track(work);
    return work;
  }

  /** The error of a factory hook that outlived its timeout, with the pool's state. */
  #hookTimeout(hook: "create" | "validate" | "reset" | "destroy", timeoutMs: number): PoolError {
    const stats = this.stats();
    return new PoolError(
      `cannot ${hook} a resource: factory.${hook}() took longer than ${timeoutMs} ms ` +
        `(${describeState(stats)})`,
      { stats },
    );
  }

  /**
   * Calls a factory hook, bounding an async one by `timeoutMs` (aborting `controller` then).
   * A sync hook costs no timer.
   */
  #runHook<R>(
    name: "validate" | "reset" | "destroy",
    timeoutMs: number,
    call: () => R | Promise<R>,
    controller?: AbortController,
  ): Promise<R> {
    let result: R | Promise<R>;
    try {
      result = call();
    } catch (error) {
      return Promise.reject(error);
    }
    if (!isThenable(result) || timeoutMs === Infinity) return Promise.resolve(result);
    const pending = result;
    const deadlines = this.#deadlines[name];
    return new Promise<R>((resolve, reject) => {
      const deadline = deadlines.arm(this.#reaper.now(), () => {
        const error = this.#hookTimeout(name, timeoutMs);
        controller?.abort(error);
        reject(error);
      });
      pending.then(
        (value) => {
          deadlines.disarm(deadline);
          resolve(value);
        },
        (error) => {
          deadlines.disarm(deadline);
          reject(error);
        },
      );
    });
  }

  // ---------------------------------------------------------------- waiters

  #armWaitTimer(inMs: number): void {
    this.#waitTimer = after(Math.max(1, Math.ceil(inMs)), () => {
      this.#waitTimer = undefined;
      this.#expireShared();
    });
  }

  #disarmWaitTimer(): void {
    if (this.#waitTimer === undefined) return;
    cancelAfter(this.#waitTimer);
    this.#waitTimer = undefined;
  }

  /**
   * Times out the waiters on the shared timer whose deadline passed, oldest first, and arms the
   * timer again for the next one. Served waiters leave the timer as it is (it then fires for a
   * deadline nobody holds any more, and moves on): a hand-off costs no timer work at all.
   */
  #expireShared(): void {
    const now = this.#reaper.now();
    for (let w = this.#waiters.head, next: Waiter<T> | undefined; w !== undefined; w = next) {
      next = w.next;
      if (Number.isNaN(w.sharedDeadline)) continue; // a waiter with its own timer
      if (w.sharedDeadline > now) return this.#armWaitTimer(w.sharedDeadline - now);
      this.#expire(w);
    }
  }

  #expire(w: Waiter<T>): void {
    if (w.list !== this.#waiters) return;
    if (w.armed !== undefined) w.armed.timer = undefined;
    // The state is taken while the waiter still counts, as the caller saw the queue.
    const stats = this.stats();
    const cause = this.#createFailures > 0
      ? this.#lastCreateError
      : this.#budgetWait !== undefined
      ? new PoolError("the shared budget had no free permit", { stats })
      : undefined;
    const error = new AcquireTimeoutError(w.timeoutMs, stats, cause);
    this.#settleWaiter(w);
    this.#timedOut++;
    const waitedMs = this.#reaper.now() - w.since;
    if (this.#hub.active) this.#hub.emit({ type: "timeout", time: Date.now(), waitedMs });
    w.reject(error);
  }

  #abandon(w: Waiter<T>): void {
    if (w.list !== this.#waiters) return;
    const armed = w.armed!;
    armed.onAbort = undefined; // fired once; nothing to remove
    this.#settleWaiter(w);
    this.#aborted++;
    const reason = armed.signal!.reason;
    if (this.#hub.active) {
      const waitedMs = this.#reaper.now() - w.since;
      this.#hub.emit({ type: "abort", time: Date.now(), waitedMs, reason });
    }
    w.reject(reason);
  }

  #checkReady(): void {
    if (this.#readyWaiters.size === 0 || this.#live() < this.#o.min) return;
    for (const d of [...this.#readyWaiters]) d.resolve();
  }

  // ---------------------------------------------------------------- reaper

  /** One aging pass: lifetime, idle timeout, keepalive, leaks, min upkeep. */
  #reap(): void {
    if (this.#closed) return;
    const now = this.#reaper.now();
    let surplus = this.#live() - this.#o.min;
    let keepalives = 0;
    // Head first: the least recently returned resources age out first. Plain loops, not the
    // lists' iterators: a generator per tick costs several times the pass itself.
    for (let r = this.#idle.head, next: Resource<T> | undefined; r !== undefined; r = next) {
      next = r.next;
      if (r.expiresAt <= now) {
        void this.#destroy(r, "lifetime");
        surplus--;
      } else if (surplus > 0 && now - r.returnedAt >= this.#o.idleTimeoutMs) {
        void this.#destroy(r, "idle");
        surplus--;
      } else if (
        this.#o.keepaliveMs > 0 && this.#factory.validate !== undefined &&
        keepalives < KEEPALIVE_BATCH && now - r.checkedAt >= this.#o.keepaliveMs
      ) {
        keepalives++;
        this.#validate(r, false);
      }
    }
    if (this.#o.leakDetectionMs > 0 && this.#hub.active) {
      for (const r of this.#all) {
        if (r.state !== "active") continue;
        const heldMs = now - r.acquiredAt;
        if (!r.leakReported && heldMs >= this.#o.leakDetectionMs) {
          r.leakReported = true;
          this.#hub.emit({
            type: "leak",
            time: Date.now(),
            id: r.id,
            heldMs,
            stack: r.origin?.stack ?? "",
          });
        }
      }
    }
    this.#pump();
    if (this.#footprint() === 0) this.#reaper.stop();
  }

  // ---------------------------------------------------------------- close

  /** While closing: resolves the wait once no lease is out and no create is in flight. */
  #checkDrained(): void {
    if (this.#drained && this.#activeCount === 0 && this.#creating === 0) this.#drained();
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    this.#closed = true;
    this.#budgetWait?.(); // unsubscribes; #pump does nothing once closed
    this.#reaper.stop();
    if (this.#backoff !== undefined) {
      cancelAfter(this.#backoff);
      this.#backoff = undefined;
    }
    let w: Waiter<T> | undefined;
    while ((w = this.#waiters.head) !== undefined) {
      this.#settleWaiter(w);
      w.reject(new PoolClosedError("acquire", this.stats()));
    }
    for (const d of [...this.#readyWaiters]) {
      d.reject(new PoolClosedError("get ready", this.stats()));
    }
    // Creates in flight are told to stop; close waits for them as for leases, up to timeoutMs:
    // a connection still being made must not outlive close(). One that arrives is destroyed.
    const closing = new PoolClosedError("create", this.stats());
    for (const controller of [...this.#createsInFlight.keys()]) controller.abort(closing);
    for (const r of [...this.#idle]) void this.#destroy(r, "close");

    if (this.#activeCount > 0 || this.#creating > 0) {
      let timer: TimerHandle | undefined;
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
        if (timeoutMs !== Infinity) timer = after(timeoutMs, resolve);
        this.#checkDrained();
      });
      this.#drained = undefined;
      if (timer !== undefined) cancelAfter(timer);
      // Past the deadline: abandon what is still being made (a late result is destroyed when it
      // comes) and take back what is still leased.
      for (const abandon of [...this.#createsInFlight.values()]) abandon();
      for (const r of [...this.#all].filter((r) => r.state === "active")) {
        void this.#destroy(r, "close");
      }
    }
    // Creates, validations, resets and destroys still running end in destroys of their own.
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    this.#reaper.stop();
    if (this.#hub.active) this.#hub.emit({ type: "close", time: Date.now() });
    this.#ended = true;
    this.#hub.endAll();
  }
}
