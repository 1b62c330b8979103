/**
 * Typed pool events, fanned out to any number of async-iterator subscribers and an optional
 * callback. Each subscriber owns a bounded buffer: a slow reader never slows the pool or grows
 * memory without bound; when its buffer overflows the oldest events are dropped and the next
 * event it reads says how many (`dropped`). With no subscriber and no callback, emitting costs
 * the pool one branch.
 *
 * @module
 */

/** Why a resource was destroyed. */
export type DestroyReason =
  | "idle"
  | "lifetime"
  | "max-uses"
  | "invalid"
  | "evicted"
  | "error"
  | "close";

interface Base {
  /** `Date.now()` when it happened. */
  time: number;
  /** Events lost to this subscriber's buffer overflow just before this one. */
  dropped?: number;
}

/** Something that happened in a pool: a discriminated union on `type`. */
export type PoolEvent =
  | Base & { type: "create"; id: number; tookMs: number }
  | Base & { type: "create-error"; error: unknown; attempt: number }
  | Base & { type: "acquire"; id: number; waitedMs: number; hit: boolean }
  | Base & { type: "release"; id: number; heldMs: number }
  | Base & { type: "destroy"; id: number; reason: DestroyReason; error?: unknown }
  | Base & { type: "timeout"; waitedMs: number }
  | Base & { type: "abort"; waitedMs: number; reason: unknown }
  | Base & { type: "exhausted"; waiting: number }
  | Base & { type: "validate-fail"; id: number; error?: unknown }
  | Base & { type: "leak"; id: number; heldMs: number; stack: string }
  | Base & { type: "unleaked"; id: number; heldMs: number }
  | Base & { type: "close" };

/** The names of {@linkcode PoolEvent} types. */
export type PoolEventType = PoolEvent["type"];

/** Options of `pool.events()`. */
export interface EventsOptions {
  /** Ends the iteration when aborted. */
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
  #waiting: Settle | undefined;
  #done = false;
  #signal: AbortSignal | undefined;
  #onAbort = () => this.end();

  constructor(hub: EventHub, bufferSize: number, signal: AbortSignal | undefined) {
    this.#hub = hub;
    this.#buffer = new Array(bufferSize);
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  push(event: PoolEvent): void {
    if (this.#waiting) {
      const settle = this.#waiting;
      this.#waiting = undefined;
      settle({ value: this.#mark(event), done: false });
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
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  /** Stops delivery; buffered events are still read, then the iterator ends. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#hub.unsubscribe(this);
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const settle = this.#waiting;
    this.#waiting = undefined;
    settle?.({ value: undefined, done: true });
  }

  return(): Promise<IteratorResult<PoolEvent>> {
    this.end();
    this.#size = 0;
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
        this.#callback(event);
      } catch {
        // A throwing callback is the caller's bug; it must never break the pool.
      }
    }
  }

  subscribe(options: EventsOptions = {}): AsyncIterableIterator<PoolEvent> {
    const size = options.bufferSize ?? 1024;
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`bufferSize must be a whole number ≥ 1, received ${String(size)}`);
    }
    const subscriber = new Subscriber(this, size, options.signal);
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
