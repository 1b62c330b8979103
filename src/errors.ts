/**
 * The errors a pool rejects with. Callers catch these by class or by their literal `name`;
 * each carries a `stats` snapshot of the pool at the moment it failed (all but the one
 * `lease.value` throws after the lease ended: a lease does not hold its pool) and, where one
 * exists, the underlying error as `cause`. Messages say what failed and the pool's state, and never
 * contain a resource's value nor the text of an error the pool did not make (a driver's message
 * may hold a connection string or a password): such an error is only named by its kind, and is
 * reachable as `cause`.
 *
 * @module
 */

import type { PoolStats } from "./stats.ts";

/** The state summary appended to error messages, e.g. `10 in use, 7 waiting`. */
export function describeState(stats: PoolStats): string {
  // Resources being validated or reset are named only when there are some.
  const checking = stats.validating > 0 ? `${stats.validating} being checked, ` : "";
  return `${stats.active} in use, ${checking}${stats.idle} idle, ${stats.waiting} waiting, ` +
    `${stats.creating} creating, max ${stats.max}`;
}

/**
 * The base class of every error the pool raises itself.
 *
 * @example Catch any pool error
 * ```ts
 * import { Pool, PoolError } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const pool = new Pool({ create: () => ({}) });
 * await pool.close();
 * await assert.rejects(pool.acquire(), PoolError);
 * ```
 */
export class PoolError extends Error {
  /** Always `"PoolError"`, so the error can be told apart without `instanceof`. */
  override name = "PoolError";
  /** The pool's counters when the error was raised; `undefined` only for a stale `lease.value`. */
  readonly stats: PoolStats | undefined;

  /** Makes an error; `stats` is the pool's state to report. */
  constructor(message: string, options?: { cause?: unknown; stats?: PoolStats }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.stats = options?.stats;
  }
}

/**
 * An acquire waited longer than its deadline. When creating resources was failing, `cause` is
 * the last create error, so a down database shows up as the reason, not as a bare timeout; the
 * message names its kind (e.g. `PostgresError 28P01`), never its text.
 *
 * @example
 * ```ts
 * import { AcquireTimeoutError, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const pool = new Pool({ create: () => ({}) }, { max: 1 });
 * const held = await pool.acquire();
 * await assert.rejects(pool.acquire({ timeoutMs: 10 }), AcquireTimeoutError);
 * await held.release();
 * await pool.close();
 * ```
 */
export class AcquireTimeoutError extends PoolError {
  /** Always `"AcquireTimeoutError"`, so the error can be told apart without `instanceof`. */
  override name = "AcquireTimeoutError";
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;

  /** Makes the error for a deadline of `timeoutMs`. */
  constructor(timeoutMs: number, stats: PoolStats, cause?: unknown) {
    const why = cause === undefined ? "" : `; last create error: ${errorText(cause)}`;
    super(
      `cannot acquire: timed out after ${timeoutMs} ms (${describeState(stats)})${why}`,
      { cause, stats },
    );
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The wait queue was full (`maxWaiting`), so the acquire was refused at once.
 *
 * @example
 * ```ts
 * import { Pool, PoolExhaustedError } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const pool = new Pool({ create: () => ({}) }, { max: 1, maxWaiting: 0 });
 * const held = await pool.acquire();
 * await assert.rejects(pool.acquire(), PoolExhaustedError);
 * await held.release();
 * await pool.close();
 * ```
 */
export class PoolExhaustedError extends PoolError {
  /** Always `"PoolExhaustedError"`, so the error can be told apart without `instanceof`. */
  override name = "PoolExhaustedError";
  /** The `maxWaiting` limit that was reached. */
  readonly maxWaiting: number;

  /** Makes the error for a queue limit of `maxWaiting`. */
  constructor(maxWaiting: number, stats: PoolStats) {
    super(
      `cannot acquire: the wait queue is full (maxWaiting ${maxWaiting}; ${describeState(stats)})`,
      { stats },
    );
    this.maxWaiting = maxWaiting;
  }
}

/**
 * The pool is closing or closed: raised by `acquire()` after `close()`, and by every waiter
 * still queued when `close()` was called.
 *
 * @example
 * ```ts
 * import { Pool, PoolClosedError } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const pool = new Pool({ create: () => ({}) });
 * await pool.close();
 * await assert.rejects(pool.acquire(), PoolClosedError);
 * ```
 */
export class PoolClosedError extends PoolError {
  /** Always `"PoolClosedError"`, so the error can be told apart without `instanceof`. */
  override name = "PoolClosedError";

  /** Makes the error; `what` names the operation refused. */
  constructor(what: string, stats: PoolStats) {
    super(`cannot ${what}: the pool is closed (${describeState(stats)})`, { stats });
  }
}

// An error `code` short and plain enough to be an identifier (`ECONNREFUSED`, `28P01`).
const CODE = /^[\w.:-]{1,40}$/;

/**
 * What kind of value was thrown, for a message: an error's name plus its `code` when that is
 * an identifier (`PostgresError 28P01`), else the value's type. Never its text: only the
 * factory knows whether that holds a secret, so the error itself stays reachable as `cause`.
 */
export function errorText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const shown = typeof code === "number" || (typeof code === "string" && CODE.test(code));
    return shown ? `${error.name} ${code}` : String(error.name);
  }
  const type = typeof error;
  if (error === null || type === "undefined") return String(error);
  return `${type === "object" ? "an" : "a"} ${type}`;
}
