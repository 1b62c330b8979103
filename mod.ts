/**
 * edgepool: a resource pool for Deno, Bun, Node and edge runtimes.
 *
 * Leases are async-disposable, every wait honours an `AbortSignal` and a deadline, waiters are
 * served first come first served by direct hand-off, and the pool ages its resources (lifetime
 * with jitter, idle timeout, keepalive, max uses, leak detection) with one unref'd timer. Zero
 * dependencies: web-standard APIs only.
 *
 * @example
 * ```ts
 * import { Pool } from "@edgepool/pool";
 *
 * const pool = new Pool({
 *   create: () => ({ connectedAt: Date.now() }),
 *   destroy: () => {},
 * }, { max: 10, acquireTimeoutMs: 5_000 });
 *
 * {
 *   await using conn = await pool.acquire();
 *   console.log(conn.value.connectedAt);
 * }
 * console.log(pool.stats().idle); // 1
 * await pool.close();
 * ```
 *
 * @module
 */

export { type AcquireOptions, type CloseOptions, Pool, type ReadyOptions } from "./src/pool.ts";
export { Lease } from "./src/lease.ts";
export type { Factory, IdleOrder, PoolOptions, ResourceInfo } from "./src/options.ts";
export type { PoolStats, WaitStats } from "./src/stats.ts";
export type {
  DestroyReason,
  EventsOptions,
  PoolEvent,
  PoolEventBase,
  PoolEventType,
} from "./src/events.ts";
export type { MapOptions } from "./src/map.ts";
export type {
  HealthAlert,
  HealthAlertCode,
  HealthThresholds,
  PoolHealth,
  WatchOptions,
} from "./src/health.ts";
export {
  AcquireTimeoutError,
  PoolClosedError,
  PoolError,
  PoolExhaustedError,
} from "./src/errors.ts";
export type { Budget, Permit } from "./src/budget.ts";
