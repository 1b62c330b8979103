/**
 * The floor: the least a correct pool must do, written by hand, as the baseline of every bench
 * group. Idle resources sit in an array (LIFO), waiters in a FIFO that is a head-indexed array,
 * and a release hands the resource straight to the first live waiter. It supports what the
 * benches compare, and nothing else: an optional deadline (one `setTimeout` per acquire that
 * waits, cleared on hand-off) and an optional `AbortSignal` (a listener per acquire that waits,
 * removed on hand-off). A waiter that times out or is aborted is left in the queue as a
 * tombstone and skipped by the next hand-off, so cancelling is O(1) too.
 *
 * No creation, validation, lifetimes, events or stats: resources are given to the constructor.
 *
 * @module
 */

class FloorWaiter<T> {
  readonly resolve: (resource: T) => void;
  readonly reject: (error: unknown) => void;
  done = false;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  constructor(resolve: (resource: T) => void, reject: (error: unknown) => void) {
    this.resolve = resolve;
    this.reject = reject;
  }
}

/** Options of {@linkcode FloorPool}. */
export interface FloorOptions {
  /** A deadline for acquires that wait; `Infinity` waits forever. @default {Infinity} */
  acquireTimeoutMs?: number;
}

/** A minimal FIFO hand-off pool over a fixed set of resources. */
export class FloorPool<T> {
  readonly #idle: T[];
  #waiters: (FloorWaiter<T> | undefined)[] = [];
  #head = 0;
  readonly #timeoutMs: number;

  /** Pools `resources`; they all start idle. */
  constructor(resources: readonly T[], options?: FloorOptions) {
    this.#idle = [...resources];
    this.#timeoutMs = options?.acquireTimeoutMs ?? Infinity;
  }

  /** Resolves with an idle resource at once, else with the first one released to it. */
  acquire(signal?: AbortSignal): Promise<T> {
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    // Queue order is kept: an idle resource is only taken when nobody waits.
    if (this.#head === this.#waiters.length && this.#idle.length > 0) {
      return Promise.resolve(this.#idle.pop()!);
    }
    return new Promise<T>((resolve, reject) => {
      const w = new FloorWaiter<T>(resolve, reject);
      this.#waiters.push(w);
      if (this.#timeoutMs !== Infinity) {
        w.timer = setTimeout(() => {
          w.done = true;
          if (w.onAbort !== undefined) w.signal!.removeEventListener("abort", w.onAbort);
          reject(new Error(`acquire timed out after ${this.#timeoutMs} ms`));
        }, this.#timeoutMs);
      }
      if (signal !== undefined) {
        w.signal = signal;
        w.onAbort = () => {
          w.done = true;
          if (w.timer !== undefined) clearTimeout(w.timer);
          reject(signal.reason);
        };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
    });
  }

  /** Gives `resource` to the first live waiter, else back to idle. */
  release(resource: T): void {
    const waiters = this.#waiters;
    while (this.#head < waiters.length) {
      const w = waiters[this.#head]!;
      waiters[this.#head++] = undefined;
      if (w.done) continue;
      w.done = true;
      if (w.timer !== undefined) clearTimeout(w.timer);
      if (w.onAbort !== undefined) w.signal!.removeEventListener("abort", w.onAbort);
      this.#compact();
      w.resolve(resource);
      return;
    }
    this.#compact();
    this.#idle.push(resource);
  }

  /** Waiters queued, tombstones included. */
  get waiting(): number {
    return this.#waiters.length - this.#head;
  }

  /** Resources idle. */
  get idle(): number {
    return this.#idle.length;
  }

  // Keeps the consumed prefix of the queue from growing without bound. An empty queue is left
  // alone: setting an array's length is a runtime call in V8, and doing it on every release
  // made the floor's uncontended acquire+release 25-30 % slower on Node and Deno.
  #compact(): void {
    if (this.#head === this.#waiters.length) {
      if (this.#head === 0) return;
      this.#waiters.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#head);
      this.#head = 0;
    }
  }
}
