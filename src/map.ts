/**
 * A pooled, ordered, back-pressured map over a sync or async iterable: each item runs with a
 * leased resource, at most `concurrency` at once, and the source is read only as fast as the
 * consumer reads the results. Ending early (`break`, an error, the signal) aborts the work in
 * flight, waits for it so that every lease is back, and closes the source.
 *
 * @module
 */

import type { AcquireOptions } from "./pool.ts";
import { requireCount } from "./options.ts";
import { isThenable } from "./_thenable.ts";

/**
 * Options of `pool.map()`.
 *
 * @example Unordered, at most 3 at once, with a deadline for the whole run
 * ```ts
 * import { type MapOptions, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) }, { max: 8 });
 * const options: MapOptions = { ordered: false, concurrency: 3, signal: AbortSignal.timeout(5_000) };
 * const sizes = [];
 * for await (const size of pool.map(["a", "bb", "ccc"], (_conn, s) => s.length, options)) {
 *   sizes.push(size);
 * }
 * assert.deepEqual(sizes.sort(), [1, 2, 3]);
 * ```
 */
export interface MapOptions {
  /**
   * Yield results in source order (`true`) or as they finish (`false`). In order, a slow item
   * holds back the results after it, which count against `concurrency` until it is done.
   * @default {true}
   */
  ordered?: boolean;
  /** The most items leased and running at once; capped at the pool's `max`. @default {the pool's max} */
  concurrency?: number;
  /** Aborting it aborts the work in flight and ends the iteration with `signal.reason`. */
  signal?: AbortSignal;
}

/** What {@linkcode pooledMap} needs of a pool. */
export interface MapPool<T> {
  /** Runs `fn` with a leased resource, releasing it when `fn` settles. */
  use<R>(fn: (value: T) => R | Promise<R>, options?: AcquireOptions): Promise<R>;
  /** Only `max` is read. */
  stats(): { max: number };
}

/** The work `pool.map()` does for each item. */
export type MapFn<T, I, R> = (value: T, item: I, signal: AbortSignal) => R | Promise<R>;

type Source<I> = Iterator<I> | AsyncIterator<I>;
type Waiter<R> = {
  resolve(result: IteratorResult<R>): void;
  reject(error: unknown): void;
};

const DONE: IteratorResult<never> = Object.freeze({ value: undefined, done: true });

function isIterable(source: unknown): boolean {
  if (source === null || source === undefined) return false;
  const s = source as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  return typeof s[Symbol.asyncIterator] === "function" || typeof s[Symbol.iterator] === "function";
}

class PooledMap<T, I, R> implements AsyncIterableIterator<R> {
  readonly #pool: MapPool<T>;
  readonly #fn: MapFn<T, I, R>;
  readonly #ordered: boolean;
  readonly #concurrency: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => void this.#stop({ error: this.#signal!.reason });
  readonly #controller = new AbortController();
  readonly #source: Iterable<I> | AsyncIterable<I>;
  #iterator: Source<I> | undefined = undefined;

  #started = false;
  #pulling = false;
  /** Inside the source's own next() call (it may abort the map's signal from there). */
  #inNext = false;
  #sourceDone = false;
  #nextIndex = 0; // index of the next item pulled
  #yieldIndex = 0; // ordered: index of the next result to yield
  #unread = 0; // pulled (or being pulled) and not yet yielded: running or buffered
  readonly #running = new Set<Promise<void>>();
  readonly #results = new Map<number, R>(); // ordered: by index
  #finished: R[] = []; // unordered: in finishing order
  #finishedHead = 0;
  readonly #waiters: Waiter<R>[] = [];

  // Ending happens once; a failure is reported by the first read after the cleanup.
  #stopping: Promise<{ error: unknown } | undefined> | undefined = undefined;
  #failure: { error: unknown } | undefined = undefined;
  #ended = false;

  constructor(
    pool: MapPool<T>,
    source: Iterable<I> | AsyncIterable<I>,
    fn: MapFn<T, I, R>,
    ordered: boolean,
    concurrency: number,
    signal: AbortSignal | undefined,
  ) {
    this.#pool = pool;
    this.#source = source;
    this.#fn = fn;
    this.#ordered = ordered;
    this.#concurrency = concurrency;
    this.#signal = signal;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<R> {
    return this;
  }

  next(): Promise<IteratorResult<R>> {
    if (!this.#started) this.#start();
    try {
      const ready = this.#take();
      if (ready !== undefined) {
        this.#fill();
        return Promise.resolve(ready);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#fill();
    });
  }

  /** Ends early: aborts the work in flight, waits for its leases, and closes the source. */
  async return(): Promise<IteratorResult<R>> {
    if (!this.#started) this.#start();
    const closeFailure = await this.#stop(undefined);
    // The caller chose to stop: a failure not yet read is moot.
    this.#failure = undefined;
    this.#settleWaiters();
    if (closeFailure !== undefined) throw closeFailure.error;
    return DONE;
  }

  #start(): void {
    this.#started = true;
    if (this.#signal?.aborted) return this.#fail(this.#signal.reason);
    try {
      const s = this.#source as Partial<AsyncIterable<I> & Iterable<I>>;
      this.#iterator = typeof s[Symbol.asyncIterator] === "function"
        ? s[Symbol.asyncIterator]!()
        : s[Symbol.iterator]!();
    } catch (error) {
      return this.#fail(error);
    }
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Ends before anything ran. */
  #fail(error: unknown): void {
    this.#failure = { error };
    this.#sourceDone = this.#ended = true;
    this.#stopping = Promise.resolve(undefined);
  }

  /** The next result to hand out if one is ready, or the end once reached; throws a failure. */
  #take(): IteratorResult<R> | undefined {
    if (this.#ended) {
      if (this.#failure !== undefined) {
        const { error } = this.#failure;
        this.#failure = undefined;
        throw error;
      }
      return DONE;
    }
    if (this.#stopping !== undefined) return undefined; // cleanup in progress
    let value: R;
    if (this.#ordered) {
      if (!this.#results.has(this.#yieldIndex)) return this.#doneIfDrained();
      value = this.#results.get(this.#yieldIndex)!;
      this.#results.delete(this.#yieldIndex++);
    } else {
      if (this.#finishedHead === this.#finished.length) return this.#doneIfDrained();
      value = this.#finished[this.#finishedHead++]!;
      if (this.#finishedHead === this.#finished.length) {
        this.#finished = [];
        this.#finishedHead = 0;
      }
    }
    this.#unread--;
    return { value, done: false };
  }

  #doneIfDrained(): IteratorResult<R> | undefined {
    if (!this.#sourceDone || this.#unread > 0) return undefined;
    this.#ended = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    return DONE;
  }

  /** Hands what is ready to the reads waiting, oldest first. */
  #settleWaiters(): void {
    while (this.#waiters.length > 0) {
      let result: IteratorResult<R> | undefined;
      try {
        result = this.#take();
      } catch (error) {
        this.#waiters.shift()!.reject(error);
        continue;
      }
      if (result === undefined) break;
      this.#waiters.shift()!.resolve(result);
    }
    this.#fill(); // after the loop: a fill can end the source, which settles waiters again
  }

  /** Pulls from the source, one item at a time, while there is room. */
  #fill(): void {
    while (
      !this.#pulling && !this.#sourceDone && this.#stopping === undefined &&
      this.#unread < this.#concurrency
    ) {
      this.#pulling = true;
      this.#unread++; // the item being pulled counts against concurrency already
      let step: IteratorResult<I> | Promise<IteratorResult<I>>;
      this.#inNext = true;
      try {
        step = this.#iterator!.next();
      } catch (error) {
        this.#pulled({ error });
        return;
      } finally {
        this.#inNext = false;
      }
      if (isThenable(step)) {
        step.then(
          (result) => {
            this.#pulled(result);
            this.#fill();
          },
          (error) => this.#pulled({ error }),
        );
        return;
      }
      this.#pulled(step);
    }
  }

  #pulled(step: IteratorResult<I> | { error: unknown }): void {
    this.#pulling = false;
    if (this.#stopping !== undefined) return; // arrived while stopping: never run
    this.#unread--;
    if (step === null || typeof step !== "object") {
      step = { error: new TypeError(`map(): the source's next() returned ${String(step)}`) };
    }
    if ("error" in step) {
      this.#sourceDone = true; // a source that threw has ended; it is not closed again
      void this.#stop(step);
    } else if (step.done) {
      this.#sourceDone = true;
      this.#settleWaiters();
    } else {
      this.#unread++;
      this.#run(this.#nextIndex++, step.value);
    }
  }

  #run(index: number, item: I): void {
    const signal = this.#controller.signal;
    const task: Promise<void> = this.#pool.use((value) => this.#fn(value, item, signal), { signal })
      .then(
        (result) => {
          this.#running.delete(task);
          if (this.#stopping !== undefined) return;
          if (this.#ordered) this.#results.set(index, result);
          else this.#finished.push(result);
          this.#settleWaiters();
        },
        (error) => {
          this.#running.delete(task);
          if (this.#stopping === undefined) void this.#stop({ error });
        },
      );
    this.#running.add(task);
  }

  /**
   * Stops pulling, aborts the work in flight, waits for it (so every lease is back), and closes
   * the source unless it ended or threw. Resolves with what closing the source threw, if it
   * did. A failure passed in is reported by the next read.
   */
  #stop(failure: { error: unknown } | undefined): Promise<{ error: unknown } | undefined> {
    if (this.#stopping !== undefined) return this.#stopping.then(() => undefined);
    this.#failure = failure;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#controller.abort(failure?.error ?? new DOMException("map() ended early", "AbortError"));
    this.#results.clear();
    this.#finished = [];
    this.#finishedHead = 0;
    this.#stopping = (async () => {
      // Stopped from inside the source's next() (it aborted the signal): a generator cannot
      // be closed while it runs, so close it once that call has returned.
      if (this.#inNext) await undefined;
      while (this.#running.size > 0) await Promise.all(this.#running);
      let closeFailure: { error: unknown } | undefined;
      if (!this.#sourceDone) {
        this.#sourceDone = true;
        try {
          const closing = this.#iterator!.return?.();
          // A pull still pending may never settle (a generator awaiting input); an async
          // generator would only run return() after it, so do not wait for that.
          if (!this.#pulling) await closing;
          else Promise.resolve(closing).catch(() => {});
        } catch (error) {
          closeFailure = { error };
        }
      }
      this.#ended = true;
      this.#unread = 0;
      this.#settleWaiters();
      return closeFailure;
    })();
    return this.#stopping;
  }
}

/**
 * Maps `source` through `fn`, each call with a resource leased from `pool`: what
 * `pool.map()` runs. At most `min(concurrency, max)` calls run at once; results come in source
 * order unless `ordered` is false. The source is read only as fast as the results are: at most
 * `concurrency` items are running or waiting to be read.
 *
 * An error from `fn` or the source ends the iteration with that error at the next read
 * (results not yet read are dropped); `break` (or `return()`) ends it quietly; the signal ends
 * it with `signal.reason`. Each way, the signal
 * passed to the calls in flight is aborted, the iteration waits until every lease is back, and
 * the source's `return()` is called (unless the source itself ended or threw).
 *
 * @example Stop early: the work in flight is aborted and every lease comes back
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({ factor: 10 }) }, { max: 4 });
 * const found = [];
 * for await (const r of pool.map([1, 2, 3, 4], (conn, n) => conn.factor * n, { concurrency: 2 })) {
 *   found.push(r);
 *   if (r === 20) break;
 * }
 * assert.deepEqual(found, [10, 20]);
 * assert.equal(pool.stats().active, 0);
 * ```
 */
export function pooledMap<T, I, R>(
  pool: MapPool<T>,
  source: Iterable<I> | AsyncIterable<I>,
  fn: MapFn<T, I, R>,
  options?: MapOptions,
): AsyncIterableIterator<R> {
  if (typeof fn !== "function") {
    throw new TypeError(`map() needs a function, received ${typeof fn}`);
  }
  if (options !== undefined && (options === null || typeof options !== "object")) {
    throw new TypeError(`map() options must be an object, received ${String(options)}`);
  }
  const ordered = options?.ordered ?? true;
  if (typeof ordered !== "boolean") {
    throw new TypeError(`map() options.ordered must be a boolean, received ${typeof ordered}`);
  }
  const max = pool.stats().max;
  const concurrency = options?.concurrency === undefined
    ? max
    : Math.min(requireCount("map() options.concurrency", options.concurrency, 1, true), max);
  const signal = options?.signal;
  if (
    signal !== undefined &&
    (signal === null || typeof (signal as AbortSignal).addEventListener !== "function")
  ) {
    throw new TypeError("map() options.signal must be an AbortSignal");
  }
  if (!isIterable(source)) {
    throw new TypeError(
      `map() needs an iterable or async iterable source, received ${
        source === null ? "null" : typeof source
      }`,
    );
  }
  return new PooledMap(pool, source, fn, ordered, concurrency, signal);
}
