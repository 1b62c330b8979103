/**
 * The interface of a budget: a cap on resources shared by several pools, typically across
 * processes (100 instances × `max` 10 must not open 1 000 connections against a database that
 * allows 100). Before creating a resource the pool takes a permit; destroying the resource gives
 * it back. When the budget is full the pool behaves as if at `max`: its waiters wait, with their
 * deadlines and signals, and are served when a permit frees anywhere. `kvBudget()` in
 * `./budget/deno_kv.ts` implements it on Deno KV; any other coordinator can be plugged in.
 *
 * @module
 */

/**
 * A permit from a {@linkcode Budget}, held while one resource lives.
 *
 * @example A permit held while its resource lives
 * ```ts
 * import { type Permit, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * let out = 0;
 * const take = (): Permit => {
 *   out++;
 *   return { release: () => void out-- };
 * };
 * await using pool = new Pool({ create: () => ({}), destroy: () => {} }, {
 *   budget: { tryAcquire: () => Promise.resolve(take()), onAvailable: () => () => {} },
 * });
 * await pool.use(() => {});
 * assert.equal(out, 1); // the idle resource still holds its permit
 * await pool.evict();
 * assert.equal(out, 0); // given back once the resource was destroyed
 * ```
 */
export interface Permit {
  /** Gives the permit back; the pool calls it once, after the resource was destroyed. */
  release(): void | Promise<void>;
}

/**
 * A cap shared by several pools.
 *
 * @example A budget shared by two pools in one process
 * ```ts
 * import { type Budget, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * function localBudget(limit: number): Budget {
 *   let used = 0;
 *   const listeners = new Set<() => void>();
 *   return {
 *     tryAcquire: () => {
 *       if (used === limit) return Promise.resolve(undefined);
 *       used++;
 *       return Promise.resolve({ release: () => { used--; for (const l of listeners) l(); } });
 *     },
 *     onAvailable: (listener) => {
 *       listeners.add(listener);
 *       if (used < limit) listener(); // freed since the pool was told there was none
 *       return () => listeners.delete(listener);
 *     },
 *   };
 * }
 * const budget = localBudget(1);
 * await using a = new Pool({ create: () => ({}), destroy: () => {} }, { budget });
 * await using b = new Pool({ create: () => ({}), destroy: () => {} }, { budget });
 * const lease = await a.acquire();
 * const waiting = b.acquire({ timeoutMs: 1_000 }); // the budget is full: b waits
 * await lease.destroy(); // a's resource goes, its permit frees, b creates
 * await (await waiting).release();
 * assert.equal(b.stats().created, 1);
 * ```
 */
export interface Budget {
  /**
   * Takes a permit, or resolves `undefined` when none is free (the pool then waits for
   * {@linkcode Budget.onAvailable}). `onLost` is called if the budget later revokes the permit
   * (for example, it could not be renewed): the pool then retires the resource, idle at once,
   * leased when released. A rejection counts as a create error.
   */
  tryAcquire(signal: AbortSignal, onLost: () => void): Promise<Permit | undefined>;
  /**
   * Calls `listener` when a permit may have freed; returns a function that stops it. The pool
   * subscribes after a `tryAcquire` came back empty, so a permit freed in between must not be
   * missed: when one is already free as the listener is added, call it (at once or soon).
   */
  onAvailable(listener: () => void): () => void;
}
