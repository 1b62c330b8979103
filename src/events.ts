/**
 * Typed pool events, fanned out to any number of async-iterator subscribers and an optional
 * callback. Each subscriber owns a bounded buffer: a slow reader never slows the pool or grows
 * memory without bound; when its buffer overflows the oldest events are dropped and the next
 * event it reads says how many (`dropped`). With no subscriber and no callback, emitting costs
 * the pool one branch.
 *
 * @module
 */

import { isThenable } from "./_thenable.ts";

const noop = (): void => {};

/**
 * Why a resource was destroyed.
 *
 * @example Warn only about broken resources
 * ```ts
 * import { type DestroyReason, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * function level(reason: DestroyReason): "warn" | "debug" {
 *   switch (reason) {
 *     case "invalid": // failed validate() or isAlive()
 *     case "error": // broken (isBroken) or reset() failed
 *       return "warn";
 *     default: // "idle", "lifetime", "max-uses", "evicted", "close": routine
 *       return "debug";
 *   }
 * }
 * const log: string[] = [];
 * await using pool = new Pool({ create: () => ({}) }, {
 *   maxUses: 1,
 *   onEvent: (e) => void (e.type === "destroy" && log.push(`${level(e.reason)} ${e.reason}`)),
 * });
 * await pool.use(() => {});
 * assert.deepEqual(log, ["debug max-uses"]);
 * ```
 */
export type DestroyReason =
  | "idle"
  | "lifetime"
  | "max-uses"
  | "invalid"
  | "evicted"
  | "error"
  | "close";

/**
 * The fields every {@linkcode PoolEvent} has.
 *
 * @example A log line for any event
 * ```ts
 * import { Pool, type PoolEventBase } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * function line(event: PoolEventBase & { type: string }): string {
 *   const lost = event.dropped ? ` (${event.dropped} earlier events dropped)` : "";
 *   return `${new Date(event.time).toISOString()} ${event.type}${lost}`;
 * }
 * await using pool = new Pool({ create: () => ({}) });
 * const events = pool.events({ bufferSize: 1 });
 * await pool.use(() => {}); // create, acquire, release: the buffer keeps the last one
 * const { value } = await events.next();
 * assert.match(line(value), /Z release \(2 earlier events dropped\)$/);
 * ```
 */
export interface PoolEventBase {
  /** `Date.now()` when it happened. */
  time: number;
  /** Events lost to this subscriber's buffer overflow just before this one. */
  dropped?: number;
}

/**
 * Something that happened in a pool: a discriminated union on `type`. Durations (`tookMs`,
 * `waitedMs`, `heldMs`) are in milliseconds; `id` names the resource.
 *
 * @example Log slow acquires and leaks
 * ```ts
 * import { Pool, type PoolEvent } from "@edgepool/pool";
 *
 * function log(event: PoolEvent): void {
 *   switch (event.type) {
 *     case "acquire":
 *       if (event.waitedMs > 100) console.warn(`waited ${event.waitedMs} ms`);
 *       break;
 *     case "leak":
 *       console.warn(`resource ${event.id} held ${event.heldMs} ms, acquired at`, event.stack);
 *       break;
 *   }
 * }
 * await using pool = new Pool({ create: () => ({}) }, { onEvent: log, leakDetectionMs: 60_000 });
 * await pool.use(() => {});
 * ```
 */
export type PoolEvent =
  | PoolEventBase & { type: "create"; id: number; tookMs: number }
  | PoolEventBase & { type: "create-error"; error: unknown; attempt: number }
  | PoolEventBase & { type: "acquire"; id: number; waitedMs: number; hit: boolean }
  | PoolEventBase & { type: "release"; id: number; heldMs: number }
  | PoolEventBase & { type: "destroy"; id: number; reason: DestroyReason; error?: unknown }
  | PoolEventBase & { type: "timeout"; waitedMs: number }
  | PoolEventBase & { type: "abort"; waitedMs: number; reason: unknown }
  | PoolEventBase & { type: "exhausted"; waiting: number }
  | PoolEventBase & { type: "validate-fail"; id: number; error?: unknown }
  | PoolEventBase & { type: "leak"; id: number; heldMs: number; stack: string }
  | PoolEventBase & { type: "unleaked"; id: number; heldMs: number }
  | PoolEventBase & { type: "close" };

/**
 * The names of {@linkcode PoolEvent} types.
 *
 * @example Count events by type
 * ```ts
 * import { Pool, type PoolEventType } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const counts = new Map<PoolEventType, number>();
 * await using pool = new Pool({ create: () => ({}) }, {
 *   onEvent: (event) => counts.set(event.type, (counts.get(event.type) ?? 0) + 1),
 * });
 * await pool.use(() => {});
 * await pool.use(() => {});
 * assert.deepEqual(Object.fromEntries(counts), { create: 1, acquire: 2, release: 2 });
 * ```
 */
export type PoolEventType = PoolEvent["type"];

/**
 * Options of `pool.events()`.
 *
 * @example Stop reading at shutdown
 * ```ts
 * import { type EventsOptions, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) });
 * const shutdown = new AbortController();
 * const options: EventsOptions = { signal: shutdown.signal, bufferSize: 256 };
 * const events = pool.events(options);
 * await pool.use(() => {});
 * shutdown.abort(); // ends the iteration at once, discarding the buffered events
 * assert.deepEqual(await events.next(), { value: undefined, done: true });
 * ```
 */
export interface EventsOptions {
  /** Ends the iteration when aborted, at once: events still buffered are discarded. */
  signal?: AbortSignal;
  /** Events buffered for this subscriber before the oldest are dropped. @default {1024} */
  bufferSize?: number;
}

type Settle = (result: IteratorResult<PoolEvent>) => void;

class Subscriber implements AsyncIterableIterator<PoolEvent> {
  #hub: EventHub;
  #buffer: (PoolEvent | undefined)[];
  #head = 0;
  #size = 0;
  #dropped = 0;
  // Reads waiting for an event, oldest first: a caller may call next() again before the
  // previous call settled, and each call must get its own event.
  #waiting: Settle[] = [];
  #done = false;
  #signal: AbortSignal | undefined;
  #onAbort = () => void this.return();

  constructor(hub: EventHub, bufferSize: number, signal: AbortSignal | undefined) {
    this.#hub = hub;
    this.#buffer = new Array(bufferSize);
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  push(event: PoolEvent): void {
    if (this.#waiting.length > 0) {
      this.#waiting.shift()!({ value: this.#mark(event), done: false });
      return;
    }
    const cap = this.#buffer.length;
    if (this.#size === cap) {
      this.#head = (this.#head + 1) % cap; // overwrite the oldest
      this.#size--;
      this.#dropped++;
    }
    this.#buffer[(this.#head + this.#size) % cap] = event;
    this.#size++;
  }

  #mark(event: PoolEvent): PoolEvent {
    if (this.#dropped === 0) return event;
    const marked = { ...event, dropped: this.#dropped };
    this.#dropped = 0;
    return marked;
  }

  next(): Promise<IteratorResult<PoolEvent>> {
    if (this.#size > 0) {
      const event = this.#buffer[this.#head]!;
      this.#buffer[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.#buffer.length;
      this.#size--;
      return Promise.resolve({ value: this.#mark(event), done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Stops delivery; buffered events are still read, then the iterator ends (what close does). */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#hub.unsubscribe(this);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const settle of waiting) settle({ value: undefined, done: true });
  }

  /** Ends the iteration now: buffered events are discarded (what `break` and the signal do). */
  return(): Promise<IteratorResult<PoolEvent>> {
    this.end();
    this.#size = 0;
    this.#dropped = 0;
    this.#buffer.fill(undefined);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<PoolEvent> {
    return this;
  }
}

/** Delivers events to subscribers and the callback. */
export class EventHub {
  #subscribers = new Set<Subscriber>();
  #callback: ((event: PoolEvent) => void) | undefined;

  constructor(callback: ((event: PoolEvent) => void) | undefined) {
    this.#callback = callback;
  }

  /** True when anyone listens: callers check it before building an event. */
  get active(): boolean {
    return this.#callback !== undefined || this.#subscribers.size > 0;
  }

  /** How many iterators are subscribed. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  emit(event: PoolEvent): void {
    for (const subscriber of this.#subscribers) subscriber.push(event);
    if (this.#callback) {
      try {
        // An async callback's rejection too (an unhandled one would end a Node process).
        const outcome: unknown = this.#callback(event);
        if (isThenable(outcome)) Promise.resolve(outcome).catch(noop);
      } catch {
        // A throwing callback is the caller's bug; it must never break the pool.
      }
    }
  }

  subscribe(options: EventsOptions = {}): AsyncIterableIterator<PoolEvent> {
    if (options === null || typeof options !== "object") {
      throw new TypeError(`events() options must be an object, received ${String(options)}`);
    }
    // null is a mistake like any other non-number (as in the pool's options), not "the default".
    const size = options.bufferSize === undefined ? 1024 : options.bufferSize;
    if (typeof size !== "number") {
      const received = size === null ? "null" : typeof size;
      throw new TypeError(`events() options.bufferSize must be a number, received ${received}`);
    }
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(
        `events() options.bufferSize must be a whole number ≥ 1, received ${String(size)}`,
      );
    }
    const signal = options.signal;
    if (
      signal !== undefined &&
      (signal === null || typeof (signal as AbortSignal).addEventListener !== "function")
    ) {
      throw new TypeError("events() options.signal must be an AbortSignal");
    }
    const subscriber = new Subscriber(this, size, signal);
    if (options.signal?.aborted) subscriber.end();
    else this.#subscribers.add(subscriber);
    return subscriber;
  }

  unsubscribe(subscriber: Subscriber): void {
    this.#subscribers.delete(subscriber);
  }

  /** Ends every subscriber (on close). */
  endAll(): void {
    for (const subscriber of [...this.#subscribers]) subscriber.end();
  }
}
