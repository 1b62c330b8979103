/**
 * The pool's options, their defaults, and their validation. Everything is checked eagerly in
 * the constructor: a `TypeError` for a value of the wrong shape, a `RangeError` for one out of
 * range, each naming the option and the value received.
 *
 * @module
 */

import type { Budget } from "./budget.ts";
import type { PoolEvent } from "./events.ts";

/**
 * What the pool needs to know about a resource: how to make one and, optionally, how to end,
 * check and clean it. Every hook may be sync or async. A hook that throws never corrupts the
 * pool: the error is reported as an event and, where a caller waits, as its rejection.
 *
 * Whether the factory has `validate`, `reset` and `isAlive` is read once, when the pool is
 * made, so that acquire and release skip a missing hook without looking for it: a hook may be
 * replaced later (each call looks it up), but one added later is not called on acquire or
 * release, and one removed later is skipped.
 *
 * @example A factory of fake connections
 * ```ts
 * import { type Factory, Pool } from "@edgepool/pool";
 *
 * const factory: Factory<{ id: number; open: boolean }> = {
 *   create: () => ({ id: Math.random(), open: true }),
 *   destroy: (conn) => { conn.open = false; },
 *   validate: (conn) => conn.open,
 * };
 * await using pool = new Pool(factory, { max: 4 });
 * await pool.use((conn) => conn.id);
 * ```
 *
 * @example Hooks that return what the driver returns
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * // A driver whose calls resolve with results: destroy and reset may return them as they are.
 * class Conn {
 *   log: string[] = [];
 *   query(sql: string): Promise<{ command: string }> {
 *     this.log.push(sql);
 *     return Promise.resolve({ command: sql.toUpperCase() });
 *   }
 *   end(): Promise<boolean> {
 *     return Promise.resolve(true);
 *   }
 * }
 * const pool = new Pool({
 *   create: () => new Conn(),
 *   destroy: (conn) => conn.end(),
 *   reset: (conn) => conn.query("rollback"),
 * });
 * const log = await pool.use(async (conn) => (await conn.query("select 1"), conn.log));
 * await pool.close();
 * assert.deepEqual(log, ["select 1", "rollback"]);
 * ```
 */
export interface Factory<T> {
  /**
   * Makes a resource. `signal` aborts when the create timed out or the pool closed; a
   * resource returned after that is destroyed.
   */
  create(signal: AbortSignal): T | Promise<T>;
  /**
   * Ends a resource; bounded by `destroyTimeoutMs`. What it returns is ignored, except that a
   * promise is awaited (so `(conn) => conn.end()` fits whatever `end()` resolves with).
   */
  destroy?(value: T, info: ResourceInfo): unknown;
  /**
   * Checks a resource before it is handed out again (and on keepalive). `false`, a throw or
   * exceeding `validateTimeoutMs` (which aborts `signal`) destroys it.
   */
  validate?(value: T, signal: AbortSignal, info: ResourceInfo): boolean | Promise<boolean>;
  /**
   * Cleans a released resource before reuse (roll back, reset session state); a throw or a
   * rejection destroys it. What it returns is ignored, except that a promise is awaited (so
   * `(conn) => conn.query("rollback")` fits whatever the query resolves with).
   */
  reset?(value: T, info: ResourceInfo): unknown;
  /**
   * A cheap, synchronous liveness check made every time an idle resource is handed out, even
   * within `validateBypassMs` (e.g. "has the driver seen this connection close?"). `false`
   * destroys the resource and the acquire goes on with another one.
   */
  isAlive?(value: T): boolean;
  /** Says whether an error thrown by `pool.use()`'s callback broke the resource (it is then destroyed). */
  isBroken?(value: T, error: unknown): boolean;
}

/**
 * Read-only facts about one pooled resource, given to hooks and predicates.
 *
 * @example Evict the resources that served many leases
 * ```ts
 * import { Pool, type ResourceInfo } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * // Also usable for age: Date.now() - info.createdAt.
 * const wornOut = (_value: unknown, info: ResourceInfo) => info.uses >= 2;
 * await using pool = new Pool({ create: () => ({}) });
 * await pool.use(() => {});
 * await pool.use(() => {}); // the same resource, its second lease
 * assert.equal(await pool.evict(wornOut), 1);
 * assert.equal(pool.stats().total, 0);
 * ```
 */
export interface ResourceInfo {
  /** The resource's id, unique within its pool. */
  readonly id: number;
  /** When it was created, in `Date.now()` milliseconds. */
  readonly createdAt: number;
  /** When it was last handed out, in `Date.now()` milliseconds (its creation if never). */
  readonly lastUsedAt: number;
  /** How many leases it has served. */
  readonly uses: number;
}

/**
 * Where released resources are taken from next.
 *
 * @example Rotate through the idle resources
 * ```ts
 * import { type IdleOrder, Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * // "fifo" hands out the least recently used resource, so the idle ones take turns (and all stay
 * // warm); "lifo", the default, reuses the most recent one and lets the others time out.
 * const idleOrder: IdleOrder = "fifo";
 * let made = 0;
 * await using pool = new Pool({ create: () => ({ id: ++made }) }, { min: 2, idleOrder });
 * await pool.ready();
 * const ids = [await pool.use((r) => r.id), await pool.use((r) => r.id)];
 * assert.deepEqual(ids, [1, 2]);
 * ```
 */
export type IdleOrder = "lifo" | "fifo";

/**
 * Options of a {@linkcode Pool}. Durations are in milliseconds.
 *
 * @example A typical production configuration
 * ```ts
 * import { Pool, type PoolOptions } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * const options: PoolOptions = {
 *   min: 2, // kept warm: the first requests after a quiet spell do not wait for a connect
 *   max: 20, // this instance's share of the database's connection limit
 *   acquireTimeoutMs: 2_000, // fail fast under overload instead of queueing forever
 *   maxWaiting: 200,
 *   maxLifetimeMs: 15 * 60_000, // shorter than the server's or the proxy's own limit
 *   idleTimeoutMs: 5 * 60_000,
 *   leakDetectionMs: 60_000, // a lease held for a minute is reported with its stack
 * };
 * await using pool = new Pool({ create: () => ({}) }, options);
 * await pool.ready();
 * assert.equal(pool.stats().idle, 2);
 * ```
 */
export interface PoolOptions {
  /** Resources kept warm, even when idle. @default {0} */
  min?: number;
  /** The most resources that may exist at once, counting creates and destroys in flight. @default {10} */
  max?: number;
  /** How long `acquire()` waits by default; `Infinity` waits forever. @default {30_000} */
  acquireTimeoutMs?: number;
  /** The most acquires that may queue while the pool is at `max`; past it `PoolExhaustedError`. @default {Infinity} */
  maxWaiting?: number;
  /**
   * The most creates in flight at once. Creation follows demand, but a burst of waiters is
   * mostly served by the resources that already exist long before new ones are ready, so
   * creating one per waiter at once overshoots (and storms the database). `Infinity` creates
   * for every uncovered waiter at once. One at a time, as HikariCP creates, ends a burst with
   * as few resources as HikariCP does (its "Welcome to the Jungle" case). @default {1}
   */
  createConcurrency?: number;
  /** How long one `factory.create()` may take before it is aborted. @default {30_000} */
  createTimeoutMs?: number;
  /** How long one `factory.destroy()` may take before the pool stops waiting. @default {5_000} */
  destroyTimeoutMs?: number;
  /** How long one `factory.validate()` may take before it counts as failed. @default {5_000} */
  validateTimeoutMs?: number;
  /** How long one `factory.reset()` may take before the resource is destroyed. @default {5_000} */
  resetTimeoutMs?: number;
  /** Validate an idle resource before handing it out. @default {true when factory.validate exists} */
  validateOnAcquire?: boolean;
  /** A resource returned or checked less than this long ago is not validated again. @default {500} */
  validateBypassMs?: number;
  /** Take the most recently returned idle resource (`"lifo"`) or the oldest (`"fifo"`). @default {"lifo"} */
  idleOrder?: IdleOrder;
  /** How often the background reaper runs. @default {1_000} */
  reapIntervalMs?: number;
  /** A resource's longest life; `0` or `Infinity` turns it off. @default {1_800_000} */
  maxLifetimeMs?: number;
  /** Each resource's lifetime is shortened by a random share up to this, in [0, 1). @default {0.025} */
  lifetimeJitter?: number;
  /** Idle resources above `min` unused this long are destroyed; `0` or `Infinity` turns it off. @default {600_000} */
  idleTimeoutMs?: number;
  /** Idle resources unused this long are validated in the background; `0` turns it off. @default {0} */
  keepaliveMs?: number;
  /** A resource is destroyed on release after this many leases. @default {Infinity} */
  maxUses?: number;
  /** A lease held longer than this emits a `"leak"` event with the acquirer's stack; `0` turns it off. @default {0} */
  leakDetectionMs?: number;
  /** How long `close()` waits for outstanding leases before destroying them anyway. @default {30_000} */
  closeTimeoutMs?: number;
  /** Called with every pool event; a throw from it (or an async one's rejection) is swallowed. */
  onEvent?: (event: PoolEvent) => void;
  /** A cap shared with other pools (e.g. across processes): a permit per resource. */
  budget?: Budget;
}

/** {@linkcode PoolOptions} with every default filled in. */
export type ResolvedOptions = Required<Omit<PoolOptions, "onEvent" | "budget">> & {
  onEvent: ((event: PoolEvent) => void) | undefined;
  budget: Budget | undefined;
};

/** The defaults of {@linkcode PoolOptions}, except `validateOnAcquire`, which follows the factory. */
export const DEFAULTS = {
  min: 0,
  max: 10,
  acquireTimeoutMs: 30_000,
  maxWaiting: Infinity,
  createConcurrency: 1,
  createTimeoutMs: 30_000,
  destroyTimeoutMs: 5_000,
  validateTimeoutMs: 5_000,
  resetTimeoutMs: 5_000,
  validateBypassMs: 500,
  idleOrder: "lifo",
  reapIntervalMs: 1_000,
  maxLifetimeMs: 1_800_000,
  lifetimeJitter: 0.025,
  idleTimeoutMs: 600_000,
  keepaliveMs: 0,
  maxUses: Infinity,
  leakDetectionMs: 0,
  closeTimeoutMs: 30_000,
} as const;

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (value !== null && typeof value === "object") {
    return Array.isArray(value) ? "an array" : "an object";
  }
  return String(value);
}

/** Checks that `value` is a number; `what` names it in the error. */
export function requireNumber(what: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new TypeError(`${what} must be a number, received ${show(value)}`);
  }
  if (Number.isNaN(value)) throw new RangeError(`${what} must not be NaN`);
  return value;
}

/** A whole number ≥ `least`, or `Infinity` when allowed. */
export function requireCount(
  what: string,
  value: unknown,
  least: number,
  infinite: boolean,
): number {
  const n = requireNumber(what, value);
  if (n === Infinity && infinite) return n;
  if (!Number.isInteger(n) || n < least) {
    const range = infinite ? `a whole number ≥ ${least} or Infinity` : `a whole number ≥ ${least}`;
    throw new RangeError(`${what} must be ${range}, received ${show(value)}`);
  }
  return n;
}

/** A duration ≥ 0 in milliseconds, `Infinity` allowed. */
export function requireDuration(what: string, value: unknown): number {
  const n = requireNumber(what, value);
  if (n < 0) throw new RangeError(`${what} must be a duration ≥ 0 ms, received ${show(value)}`);
  return n;
}

function requireFunction(what: string, value: unknown, optional: boolean): void {
  if (value === undefined && optional) return;
  if (typeof value !== "function") {
    throw new TypeError(`${what} must be a function, received ${show(value)}`);
  }
}

/** Checks the factory's shape. */
export function validateFactory(factory: unknown): void {
  if (factory === null || typeof factory !== "object") {
    throw new TypeError(
      `factory must be an object with a create() function, received ${show(factory)}`,
    );
  }
  const f = factory as Record<string, unknown>;
  requireFunction("factory.create", f.create, false);
  for (const hook of ["destroy", "validate", "reset", "isAlive", "isBroken"]) {
    requireFunction(`factory.${hook}`, f[hook], true);
  }
}

const KNOWN = new Set([...Object.keys(DEFAULTS), "validateOnAcquire", "onEvent", "budget"]);

/** Fills in defaults and checks every option. */
export function resolveOptions(
  options: PoolOptions | undefined,
  hasValidate: boolean,
): ResolvedOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== "object") {
    throw new TypeError(`options must be an object, received ${show(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new TypeError(`unknown option ${JSON.stringify(key)}`);
  }
  const o = {
    ...DEFAULTS,
    validateOnAcquire: hasValidate,
    onEvent: undefined,
    budget: undefined,
    ...options,
  };
  // `undefined` means "use the default", as with a missing key.
  for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
    if (o[key] === undefined) (o as Record<string, unknown>)[key] = DEFAULTS[key];
  }
  if (o.validateOnAcquire === undefined) o.validateOnAcquire = hasValidate;

  const max = requireCount("max", o.max, 1, false);
  const min = requireCount("min", o.min, 0, false);
  if (min > max) throw new RangeError(`min (${min}) must not exceed max (${max})`);
  requireCount("maxWaiting", o.maxWaiting, 0, true);
  requireCount("createConcurrency", o.createConcurrency, 1, true);
  requireCount("maxUses", o.maxUses, 1, true);
  for (
    const key of [
      "acquireTimeoutMs",
      "createTimeoutMs",
      "destroyTimeoutMs",
      "validateTimeoutMs",
      "resetTimeoutMs",
      "validateBypassMs",
      "maxLifetimeMs",
      "idleTimeoutMs",
      "keepaliveMs",
      "leakDetectionMs",
      "closeTimeoutMs",
    ] as const
  ) requireDuration(key, o[key]);
  const reap = requireDuration("reapIntervalMs", o.reapIntervalMs);
  if (reap < 1 || reap === Infinity) {
    throw new RangeError(`reapIntervalMs must be a finite duration ≥ 1 ms, received ${show(reap)}`);
  }
  const jitter = requireNumber("lifetimeJitter", o.lifetimeJitter);
  if (jitter < 0 || jitter >= 1) {
    throw new RangeError(`lifetimeJitter must be in [0, 1), received ${show(jitter)}`);
  }
  const lifetime = o.maxLifetimeMs === 0 ? Infinity : o.maxLifetimeMs;
  if (o.keepaliveMs > 0 && lifetime !== Infinity && o.keepaliveMs >= lifetime) {
    throw new RangeError(
      `keepaliveMs (${o.keepaliveMs}) must be less than maxLifetimeMs (${o.maxLifetimeMs})`,
    );
  }
  if (o.idleOrder !== "lifo" && o.idleOrder !== "fifo") {
    throw new TypeError(`idleOrder must be "lifo" or "fifo", received ${show(o.idleOrder)}`);
  }
  if (typeof o.validateOnAcquire !== "boolean") {
    throw new TypeError(
      `validateOnAcquire must be a boolean, received ${show(o.validateOnAcquire)}`,
    );
  }
  requireFunction("onEvent", o.onEvent, true);
  if (o.budget !== undefined) {
    const b = o.budget as unknown as Record<string, unknown>;
    if (b === null || typeof b !== "object") {
      throw new TypeError(`budget must be an object, received ${show(o.budget)}`);
    }
    requireFunction("budget.tryAcquire", b.tryAcquire, false);
    requireFunction("budget.onAvailable", b.onAvailable, false);
  }
  return o as ResolvedOptions;
}
