/**
 * A {@linkcode Budget} shared by every process that opens the same Deno KV database: a
 * cluster-wide cap on resources (100 instances × `max` 10 may not open more than `limit`
 * connections together). The KV handle is yours: `Deno.openKv()` on Deno (local SQLite file, or
 * Deno Deploy's KV), `openKv()` from the npm `@deno/kv` client on Node and Bun.
 *
 * A permit is a lease on one of `limit` slot keys, `[...key, "slot", i]`. It is taken by an
 * atomic commit that checks the slot's versionstamp, so however many processes race, a slot has
 * one holder and the limit holds. The slot stores its holder and an expiry; the holder renews
 * it every `renewEveryMs` (one unref'd timer per budget for all its permits), and a crashed
 * process's permits come back by themselves within `ttlMs`. KV's own `expireIn` deletes the key
 * eventually; the stored expiry is what counts.
 *
 * When the budget is full, processes that wait take a place in line, `[...key, "waiter", id]`
 * (refreshed while they wait): a free slot goes to the process that has waited longest, one
 * slot per turn, so a process that releases a permit does not win it straight back. This is
 * approximate, not strict: see {@linkcode kvBudget}.
 *
 * @example Two pools, one in each of two processes, share a cap of 2
 * ```ts
 * import { openKv } from "@deno/kv"; // or Deno.openKv (with --unstable-kv)
 * import { Pool } from "@edgepool/pool";
 * import { kvBudget } from "@edgepool/pool/budget/deno-kv";
 * import assert from "node:assert/strict";
 *
 * const kv = await openKv(); // in memory here; a file or Deno Deploy's KV in production
 * const budget = kvBudget({ kv, key: ["budgets", "db"], limit: 2, ttlMs: 15_000 });
 * const pool = new Pool({ create: () => ({}), destroy: () => {} }, { max: 10, budget });
 * const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
 * await assert.rejects(pool.acquire({ timeoutMs: 100 }), { name: "AcquireTimeoutError" });
 * assert.equal(await budget.inUse(), 2);
 * await a.release();
 * await b.release();
 * await pool.close(); // destroys both resources: their permits go back
 * assert.equal(await budget.inUse(), 0);
 * kv.close();
 * ```
 *
 * @module
 */

import type { Budget, Permit } from "../budget.ts";
import { requireCount } from "../options.ts";
import { after, cancelAfter, cancelEvery, every, keepAlive, type TimerHandle } from "../_timers.ts";

export type { Budget, Permit };

/**
 * A part of a KV key, as `Deno.KvKeyPart` (less `symbol`).
 *
 * @example
 * ```ts
 * import type { BudgetKvKeyPart } from "@edgepool/pool/budget/deno-kv";
 *
 * const key: BudgetKvKeyPart[] = ["budgets", "orders-db", 1];
 * ```
 */
export type BudgetKvKeyPart = string | number | bigint | boolean | Uint8Array;

/**
 * An entry as KV returns it; `versionstamp` is `null` when the key has no value.
 *
 * @example
 * ```ts
 * import type { BudgetKvEntry } from "@edgepool/pool/budget/deno-kv";
 *
 * const empty: BudgetKvEntry = { key: ["budgets", "slot", 0], value: null, versionstamp: null };
 * ```
 */
export interface BudgetKvEntry {
  /** The key. */
  readonly key: readonly unknown[];
  /** The value (`null` when absent). */
  readonly value: unknown;
  /** The version of the value; `null` when absent. */
  readonly versionstamp: string | null;
}

/**
 * An atomic operation: the part of `Deno.AtomicOperation` the budget uses.
 *
 * @example
 * ```ts
 * import { openKv } from "@deno/kv";
 * import type { BudgetKvAtomic } from "@edgepool/pool/budget/deno-kv";
 *
 * const kv = await openKv();
 * const op: BudgetKvAtomic = kv.atomic().check({ key: ["k"], versionstamp: null });
 * console.log((await op.set(["k"], new Uint8Array([1])).commit()).ok); // true
 * kv.close();
 * ```
 */
export interface BudgetKvAtomic {
  /** Fails the commit unless each key still has this versionstamp (`null`: absent). */
  check(...checks: { key: readonly BudgetKvKeyPart[]; versionstamp: string | null }[]): this;
  /** Sets a key; `expireIn` lets KV delete it after that many milliseconds (best effort). */
  set(key: readonly BudgetKvKeyPart[], value: Uint8Array, options?: { expireIn?: number }): this;
  /** Deletes a key. */
  delete(key: readonly BudgetKvKeyPart[]): this;
  /** Commits: `ok` is false when a check failed; the new versionstamp when it succeeded. */
  commit(): Promise<{ ok: boolean; versionstamp?: string }>;
}

/**
 * What the budget needs of a KV handle. `Deno.Kv` and `@deno/kv`'s `Kv` both fit; `watch` is
 * used when present.
 *
 * @example
 * ```ts
 * import { openKv } from "@deno/kv";
 * import type { BudgetKv } from "@edgepool/pool/budget/deno-kv";
 *
 * const kv: BudgetKv & { close(): void } = await openKv(); // or: await Deno.openKv(path)
 * for await (const entry of kv.list({ prefix: ["budgets"] })) console.log(entry.key);
 * kv.close();
 * ```
 */
export interface BudgetKv {
  /** Starts an atomic operation. */
  atomic(): BudgetKvAtomic;
  /** Lists the entries under a prefix (strongly consistent by default). */
  list(selector: { prefix: readonly BudgetKvKeyPart[] }): AsyncIterable<BudgetKvEntry>;
  /** Streams the current entries of `keys` whenever one of them changes (at most 10 keys). */
  watch?(keys: readonly (readonly BudgetKvKeyPart[])[]): ReadableStream<readonly BudgetKvEntry[]>;
}

/**
 * Options of {@linkcode kvBudget}. Every process sharing the budget must use the same `key`,
 * `limit` and `ttlMs`.
 *
 * @example
 * ```ts
 * import { openKv } from "@deno/kv";
 * import type { KvBudgetOptions } from "@edgepool/pool/budget/deno-kv";
 *
 * const options: KvBudgetOptions = {
 *   kv: await openKv(),
 *   key: ["budgets", "orders-db"],
 *   limit: 90, // the database's max_connections, less a reserve for admins
 *   ttlMs: 15_000,
 * };
 * ```
 */
export interface KvBudgetOptions {
  /** The KV handle, open for as long as the budget is used. */
  kv: BudgetKv;
  /** The budget's key prefix, e.g. `["budgets", "orders-db"]`; the budget owns the keys below it. */
  key: readonly BudgetKvKeyPart[];
  /** How many permits may exist at once across every process. */
  limit: number;
  /**
   * How long a permit lives without renewal: a crashed process's permits are free again after
   * this long. Keep it well above a KV write's worst latency and the clock skew between hosts.
   */
  ttlMs: number;
  /** How often the holder renews its permits; less than `ttlMs`. @default {Math.floor(ttlMs / 4)} */
  renewEveryMs?: number;
  /**
   * How often a process waiting for a permit reads the slots while it is first in line or the
   * line moves; others back off to 8× this. Polls also run at each slot's expiry.
   * @default {100}
   */
  pollMs?: number;
  /**
   * Also watch the slots with `kv.watch()`, so that a change wakes a waiting process at once
   * instead of at its next poll. Off for other handles by default: with the npm `@deno/kv`
   * client (0.14), a watch cancelled while it waits leaves the handle's later writes hanging.
   * @default {true for Deno's own Deno.Kv, false otherwise}
   */
  watch?: boolean;
}

/**
 * A {@linkcode Budget} on Deno KV, with a view of its use.
 *
 * @example
 * ```ts
 * import { openKv } from "@deno/kv";
 * import { kvBudget } from "@edgepool/pool/budget/deno-kv";
 * import assert from "node:assert/strict";
 *
 * const kv = await openKv();
 * const budget = kvBudget({ kv, key: ["b"], limit: 1, ttlMs: 5_000 });
 * const permit = await budget.tryAcquire(new AbortController().signal, () => {});
 * assert.ok(permit);
 * assert.equal(await budget.tryAcquire(new AbortController().signal, () => {}), undefined);
 * assert.equal(budget.held, 1);
 * await permit.release();
 * assert.equal(await budget.inUse(), 0);
 * kv.close();
 * ```
 */
export interface KvBudget extends Budget {
  /**
   * This budget's random id: its permits' slots hold `<id>/<n>`, and its place in line is
   * `[...key, "waiter", id]`. For monitoring: which process holds what.
   */
  readonly id: string;
  /** The limit across all processes. */
  readonly limit: number;
  /** Permits this budget (this process) holds now. */
  readonly held: number;
  /** Reads how many permits are held across all processes (unexpired slots). */
  inUse(): Promise<number>;
}

/** A permit held by this process. */
interface Held {
  readonly key: readonly BudgetKvKeyPart[];
  readonly owner: string;
  versionstamp: string;
  expiresAt: number;
  /** The renewal in flight, if any. */
  renewal: Promise<void> | undefined;
  /** Released or lost: renewals stop. */
  done: boolean;
  /** `release()` was called (a lost permit is still deleted then, if it is still ours). */
  released: boolean;
  readonly onLost: () => void;
}

interface Slot {
  readonly index: number;
  readonly key: readonly BudgetKvKeyPart[];
  readonly versionstamp: string | null;
  readonly expiresAt: number;
}

interface Waiter {
  readonly id: string;
  readonly since: number;
  readonly expiresAt: number;
}

interface Snapshot {
  readonly slots: Slot[];
  readonly waiters: Waiter[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** A non-waiting process backs off its polls up to this many times `pollMs`. */
const POLL_BACKOFF = 8;
/** Watches take at most this many keys (a Deno KV limit). */
const WATCH_KEYS = 10;
/** Attempts of one KV call while SQLite is busy (about 0.5 s in all). */
const BUSY_ATTEMPTS = 25;

function newId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return typeof c?.randomUUID === "function"
    ? c.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** Whether `kv` is Deno's own KV handle (found through `globalThis`: no Deno types here). */
function isDenoKv(kv: BudgetKv): boolean {
  const DenoKv = (globalThis as { Deno?: { Kv?: unknown } }).Deno?.Kv;
  return typeof DenoKv === "function" && kv instanceof DenoKv;
}

function isKeyPart(part: unknown): boolean {
  return typeof part === "string" || typeof part === "number" || typeof part === "bigint" ||
    typeof part === "boolean" || part instanceof Uint8Array;
}

/** `"<expiresAt> <rest>"` as UTF-8 bytes: bytes bypass KV's V8 serializer, so Bun reads them too. */
function encode(first: number, rest: string): Uint8Array {
  return encoder.encode(`${first} ${rest}`);
}

function decode(value: unknown): [number, string] | undefined {
  const text = ArrayBuffer.isView(value)
    ? decoder.decode(value as Uint8Array)
    : typeof value === "string"
    ? value
    : undefined;
  if (text === undefined) return undefined;
  const space = text.indexOf(" ");
  const n = Number(space < 0 ? text : text.slice(0, space));
  return Number.isFinite(n) ? [n, space < 0 ? "" : text.slice(space + 1)] : undefined;
}

/**
 * SQLite's "database is locked": another process held the write lock and nothing was written.
 * Deno KV's SQLite backend reports it at once instead of waiting, so the budget retries.
 */
function isBusy(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /database is locked|database is busy|SQLITE_BUSY/i.test(message);
}

/** Runs `attempt` again (a fresh operation each time) while SQLite reports itself busy. */
async function retryBusy<R>(attempt: () => Promise<R>): Promise<R> {
  for (let n = 1;; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (n >= BUSY_ATTEMPTS || !isBusy(error)) throw error;
      // Up to 1, 2, 4 … 32 ms, with full jitter: the writers spread out.
      const ms = Math.random() * Math.min(32, 2 ** (n - 1));
      await new Promise<void>((resolve) => after(ms, resolve));
    }
  }
}

/** Settles like `work`, or rejects after `ms` (an unref'd timer): KV calls never hang us. */
function bounded<R>(work: Promise<R>, ms: number): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const timer = after(ms, () => reject(new Error(`KV did not answer within ${ms} ms`)), true);
    work.then(
      (value) => {
        cancelAfter(timer);
        resolve(value);
      },
      (error) => {
        cancelAfter(timer);
        reject(error);
      },
    );
  });
}

function shuffled<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/**
 * Makes a {@linkcode KvBudget}: a cap of `limit` resources shared by every pool, in every
 * process, that uses the same KV database and `key`. Pass it as the pool's `budget` option.
 *
 * - **The limit holds** under any race: a slot is taken by an atomic commit checking its
 *   versionstamp, and an expired slot is taken the same way.
 * - **Crashes heal**: a permit not renewed for `ttlMs` is free again (its slot's stored expiry
 *   passed; KV's `expireIn` also deletes the key, eventually).
 * - **Renewal failing** (KV unreachable): the permit is kept, and the renewal retried at the
 *   next tick, as long as that tick still comes a full interval before the permit's expiry.
 *   Otherwise (and when a renewal has not answered by then, or finds the slot taken over)
 *   `onLost` is called, at least `renewEveryMs` before the expiry: the pool retires the
 *   resource, an idle one at once (gone before another process can take the slot), a leased
 *   one when released (a lease held past the expiry is the one case where the limit can be
 *   exceeded, only while this process cannot reach KV). With the default `renewEveryMs`
 *   (`ttlMs / 4`), a failed renewal is retried at the next tick even when timers run late; the
 *   permit is given up after two or three failures in a row (two once timers run late).
 * - **Permits circulate only as resources retire**: a permit goes back when its resource is
 *   destroyed. Give pools an `idleTimeoutMs` (seconds, not the default 10 minutes), so that a
 *   process that went quiet hands its permits on, and a `maxLifetimeMs`, so that busy ones do too.
 * - **Waiting**: when full, {@linkcode Budget.onAvailable} polls the slots (every `pollMs` while
 *   first in line or while the line moves, backing off to 8× that otherwise, and at each slot's
 *   expiry). With Deno's own `Deno.Kv` (option `watch`), slot changes also trigger a poll at
 *   once: within one process, and across the cluster on Deno Deploy's KV; a local SQLite file's
 *   watch does not see other processes' writes, which the polls catch. Releases in this process
 *   wake its pools at once. While a pool waits, the poll (and the watch) keep the process alive,
 *   as a waiting acquire does; the renewal timer never does.
 * - **SQLite busy**: Deno KV's SQLite backend fails a write at once with "database is locked"
 *   while another process writes; the budget retries such calls (25 times, with jittered
 *   backoff up to 32 ms).
 * - **Fairness**: processes that wait queue by the time they started waiting; a free slot goes
 *   to the first of them, one per turn. Approximate, not strict: a process that stops polling
 *   (crashed, frozen) holds its place until its place expires (about 32× `pollMs`), and a process
 *   polling late lets the next take the slot. Within a process, the pool's FIFO holds.
 * - Clocks: expiries are wall-clock times written by one host and read by others, so hosts'
 *   clocks must agree to well within `ttlMs`.
 *
 * Throws a `TypeError` for options of the wrong shape and a `RangeError` for values out of range.
 *
 * @example On Deno, with a local database file (run with `--unstable-kv`)
 * ```ts ignore
 * import postgres from "postgres";
 * import { Pool } from "@edgepool/pool";
 * import { postgresFactory } from "@edgepool/pool/postgres";
 * import { kvBudget } from "@edgepool/pool/budget/deno-kv";
 *
 * const kv = await Deno.openKv("/var/lib/app/budget.sqlite3");
 * const budget = kvBudget({ kv, key: ["budgets", "orders-db"], limit: 20, ttlMs: 15_000 });
 * // Permits go back when resources are destroyed: let idle ones go, so busy peers get them.
 * const pool = new Pool(postgresFactory(postgres, Deno.env.get("DATABASE_URL")!), {
 *   max: 10,
 *   budget,
 *   idleTimeoutMs: 10_000,
 * });
 * ```
 *
 * @example On Node or Bun, with the npm client
 * ```ts
 * import { makeLimitedV8Serializer, openKv } from "@deno/kv";
 * import { kvBudget } from "@edgepool/pool/budget/deno-kv";
 *
 * // Bun needs an explicit serializer to open the database (the budget itself stores bytes).
 * const kv = "Bun" in globalThis ? await openKv(undefined, makeLimitedV8Serializer()) : await openKv();
 * const budget = kvBudget({ kv, key: ["budgets", "orders-db"], limit: 20, ttlMs: 15_000 });
 * console.log(budget.limit); // 20
 * kv.close();
 * ```
 */
export function kvBudget(options: KvBudgetOptions): KvBudget {
  if (options === null || typeof options !== "object") {
    throw new TypeError("kvBudget() needs an options object");
  }
  const { kv, key } = options;
  if (
    kv === null || typeof kv !== "object" || typeof kv.atomic !== "function" ||
    typeof kv.list !== "function"
  ) {
    throw new TypeError("kv must be a KV handle (Deno.Kv or @deno/kv's Kv)");
  }
  if (!Array.isArray(key) || !key.every(isKeyPart)) {
    throw new TypeError("key must be an array of KV key parts");
  }
  const limit = requireCount("limit", options.limit, 1, false);
  const ttlMs = requireCount("ttlMs", options.ttlMs, 1, false);
  const renewEveryMs = options.renewEveryMs === undefined
    // A quarter: after a failed renewal the retry at the next tick still comes a full interval
    // before the expiry even when timers run late (with a third, any lateness gave it up).
    ? Math.max(1, Math.floor(ttlMs / 4))
    : requireCount("renewEveryMs", options.renewEveryMs, 1, false);
  if (renewEveryMs >= ttlMs) {
    throw new RangeError(`renewEveryMs (${renewEveryMs}) must be less than ttlMs (${ttlMs})`);
  }
  const pollMs = options.pollMs === undefined
    ? 100
    : requireCount("pollMs", options.pollMs, 1, false);
  if (options.watch !== undefined && typeof options.watch !== "boolean") {
    throw new TypeError("watch must be a boolean");
  }
  const watch = options.watch ?? isDenoKv(kv);
  if (watch && typeof kv.watch !== "function") {
    throw new TypeError("watch is true but the KV handle has no watch()");
  }
  return new KvBudgetImpl(kv, [...key], { limit, ttlMs, renewEveryMs, pollMs, watch });
}

interface Settings {
  limit: number;
  ttlMs: number;
  renewEveryMs: number;
  pollMs: number;
  watch: boolean;
}

class KvBudgetImpl implements KvBudget {
  readonly limit: number;
  readonly #kv: BudgetKv;
  readonly #prefix: readonly BudgetKvKeyPart[];
  readonly #ttlMs: number;
  readonly #renewEveryMs: number;
  readonly #pollMs: number;
  readonly #watch: boolean;
  readonly id: string = newId();
  readonly #waiterKey: readonly BudgetKvKeyPart[];
  #nextPermit = 1;
  readonly #held = new Set<Held>();
  #renewTimer: TimerHandle | undefined;

  // Waiting for a permit.
  readonly #listeners = new Set<{ fn: () => void }>();
  /** When this process took its place in line; undefined while not waiting. */
  #waitingSince: number | undefined;
  /** The `since` of the place last written, and when. */
  #placeWritten: number | undefined;
  #placeWrittenAt = 0;
  #acquiring = 0;
  #lastAttemptAt = 0;
  #pollTimer: TimerHandle | undefined;
  #polling = false;
  #pollAgain = false;
  #backoffMs: number;
  #leaveTimer: TimerHandle | undefined;
  #watches: ReadableStreamDefaultReader<readonly BudgetKvEntry[]>[] = [];

  constructor(kv: BudgetKv, prefix: readonly BudgetKvKeyPart[], settings: Settings) {
    this.#kv = kv;
    this.#prefix = prefix;
    this.limit = settings.limit;
    this.#ttlMs = settings.ttlMs;
    this.#renewEveryMs = settings.renewEveryMs;
    this.#pollMs = settings.pollMs;
    this.#watch = settings.watch;
    this.#backoffMs = settings.pollMs;
    this.#waiterKey = [...prefix, "waiter", this.id];
  }

  get held(): number {
    return this.#held.size;
  }

  async inUse(): Promise<number> {
    const { slots } = await this.#read();
    const now = Date.now();
    return slots.filter((s) => s.versionstamp !== null && s.expiresAt > now).length;
  }

  // ------------------------------------------------------------------ taking a permit

  async tryAcquire(signal: AbortSignal, onLost: () => void): Promise<Permit | undefined> {
    this.#acquiring++;
    this.#lastAttemptAt = Date.now();
    try {
      for (let round = 0; round < 3; round++) {
        signal.throwIfAborted();
        const snapshot = await this.#read();
        const now = Date.now();
        const free = this.#free(snapshot, now);
        if (free.length <= this.#ahead(snapshot, now)) break;
        for (const slot of shuffled(free)) {
          signal.throwIfAborted();
          const held = await this.#take(slot, onLost);
          if (held === undefined) continue; // another process won this slot
          if (signal.aborted) {
            await this.#release(held);
            throw signal.reason;
          }
          return { release: () => this.#release(held) };
        }
      }
      await this.#joinLine();
      return undefined;
    } finally {
      this.#acquiring--;
      this.#lastAttemptAt = Date.now();
    }
  }

  /** Reads every slot and waiter in one list. */
  #read(): Promise<Snapshot> {
    return retryBusy(() => this.#readOnce());
  }

  async #readOnce(): Promise<Snapshot> {
    const slots: Slot[] = [];
    const waiters: Waiter[] = [];
    const seen = new Set<number>();
    const depth = this.#prefix.length;
    for await (const entry of this.#kv.list({ prefix: this.#prefix })) {
      const [kind, name] = entry.key.slice(depth);
      const parsed = decode(entry.value);
      if (kind === "slot" && typeof name === "number") {
        if (!Number.isInteger(name) || name < 0 || name >= this.limit) continue;
        seen.add(name);
        slots.push({
          index: name,
          key: entry.key as BudgetKvKeyPart[],
          versionstamp: entry.versionstamp,
          // A value this version cannot read counts as held until KV expires it: never over.
          expiresAt: parsed?.[0] ?? Infinity,
        });
      } else if (kind === "waiter" && typeof name === "string" && parsed !== undefined) {
        const expiresAt = Number(parsed[1]);
        waiters.push({ id: name, since: parsed[0], expiresAt });
      }
    }
    for (let i = 0; i < this.limit; i++) {
      if (!seen.has(i)) {
        slots.push({
          index: i,
          key: [...this.#prefix, "slot", i],
          versionstamp: null,
          expiresAt: -Infinity,
        });
      }
    }
    return { slots, waiters };
  }

  #free(snapshot: Snapshot, now: number): Slot[] {
    return snapshot.slots.filter((s) => s.versionstamp === null || s.expiresAt <= now);
  }

  /** Processes in line before this one: those waiting longer, or all of them if it is not. */
  #ahead(snapshot: Snapshot, now: number): number {
    const since = this.#waitingSince;
    let ahead = 0;
    for (const w of snapshot.waiters) {
      if (w.id === this.id || w.expiresAt <= now) continue;
      if (since === undefined || w.since < since || (w.since === since && w.id < this.id)) {
        ahead++;
      }
    }
    return ahead;
  }

  /** Takes `slot` if it is still as read; leaves the line in the same commit. */
  async #take(slot: Slot, onLost: () => void): Promise<Held | undefined> {
    const owner = `${this.id}/${this.#nextPermit++}`;
    const expiresAt = Date.now() + this.#ttlMs;
    const waiting = this.#waitingSince !== undefined;
    const result = await retryBusy(() => {
      const op = this.#kv.atomic()
        .check({ key: slot.key, versionstamp: slot.versionstamp })
        .set(slot.key, encode(expiresAt, owner), { expireIn: this.#ttlMs });
      if (waiting) op.delete(this.#waiterKey);
      return op.commit();
    });
    if (!result.ok || result.versionstamp === undefined) return undefined;
    if (waiting) {
      // Served: a later wait queues again, at the back.
      this.#waitingSince = undefined;
      this.#placeWritten = undefined;
    }
    const held: Held = {
      key: slot.key,
      owner,
      versionstamp: result.versionstamp,
      expiresAt,
      renewal: undefined,
      done: false,
      released: false,
      onLost,
    };
    this.#held.add(held);
    this.#renewTimer ??= every(this.#renewEveryMs, () => this.#renewAll());
    return held;
  }

  // ------------------------------------------------------------------ holding a permit

  #renewAll(): void {
    const now = Date.now();
    for (const held of this.#held) {
      if (held.renewal === undefined) held.renewal = this.#renew(held, now);
      else if (held.expiresAt - now < 2 * this.#renewEveryMs) {
        this.#lose(held); // unanswered since the last tick, and no time left to wait
      }
    }
  }

  async #renew(held: Held, tickAt: number): Promise<void> {
    const expiresAt = Date.now() + this.#ttlMs;
    try {
      const result = await retryBusy(() =>
        this.#kv.atomic()
          .check({ key: held.key, versionstamp: held.versionstamp })
          .set(held.key, encode(expiresAt, held.owner), { expireIn: this.#ttlMs })
          .commit()
      );
      if (result.ok && result.versionstamp !== undefined) {
        held.versionstamp = result.versionstamp;
        held.expiresAt = expiresAt;
      } else {
        this.#lose(held); // expired and taken over (or deleted by KV's expiry)
      }
    } catch {
      // Retried at the next tick if that still leaves a tick before the expiry; else given up
      // now, while valid, so the pool retires the resource before another process takes it.
      if (held.expiresAt - tickAt < 2 * this.#renewEveryMs) this.#lose(held);
    } finally {
      held.renewal = undefined;
    }
  }

  #lose(held: Held): void {
    if (held.done) return;
    this.#forget(held);
    try {
      held.onLost();
    } catch {
      // the pool's callback does not throw; a custom one must not break renewals
    }
  }

  #forget(held: Held): void {
    held.done = true;
    this.#held.delete(held);
    if (this.#held.size === 0 && this.#renewTimer !== undefined) {
      cancelEvery(this.#renewTimer);
      this.#renewTimer = undefined;
    }
  }

  /**
   * Deletes the slot if it is still ours. Never rejects and never takes longer than `ttlMs`:
   * a slot that could not be deleted frees itself at its expiry.
   */
  async #release(held: Held): Promise<void> {
    if (held.released) return;
    held.released = true;
    this.#forget(held);
    let deleted = false;
    try {
      deleted = await bounded(
        (async () => {
          if (held.renewal !== undefined) await held.renewal;
          const result = await retryBusy(() =>
            this.#kv.atomic()
              .check({ key: held.key, versionstamp: held.versionstamp })
              .delete(held.key)
              .commit()
          );
          return result.ok;
        })(),
        this.#ttlMs,
      );
    } catch {
      // KV failing: the slot frees itself at its expiry
    }
    if (deleted) this.#wake();
  }

  // ------------------------------------------------------------------ waiting for a permit

  onAvailable(listener: () => void): () => void {
    const entry = { fn: listener };
    this.#listeners.add(entry);
    if (this.#listeners.size === 1) this.#startWaiting();
    return () => {
      if (!this.#listeners.delete(entry)) return;
      if (this.#listeners.size === 0) this.#stopWaiting();
    };
  }

  /** Calls every listener; each unsubscribes itself (the pool's does) or stays. */
  #wake(): void {
    for (const entry of [...this.#listeners]) {
      try {
        entry.fn();
      } catch {
        // a listener's error is its own
      }
    }
  }

  /** Takes a place in line (kept while waiting, refreshed by each poll). */
  async #joinLine(): Promise<void> {
    this.#waitingSince ??= Date.now();
    if (this.#leaveTimer === undefined && this.#listeners.size === 0) this.#scheduleLeave();
    await this.#writePlace();
  }

  async #writePlace(): Promise<void> {
    const since = this.#waitingSince;
    if (since === undefined) return;
    // Polls come at most POLL_BACKOFF × pollMs apart; the place outlives four of them, and is
    // rewritten when a quarter of that has passed (a place that was never written, at once).
    const placeMs = 4 * POLL_BACKOFF * this.#pollMs;
    const now = Date.now();
    if (this.#placeWritten === since && now - this.#placeWrittenAt < placeMs / 4) return;
    await retryBusy(() =>
      this.#kv.atomic()
        .set(this.#waiterKey, encode(since, String(now + placeMs)), { expireIn: placeMs })
        .commit()
    );
    if (this.#waitingSince === undefined) {
      // Served or gone while writing: take the place back out, or others would yield to it.
      await this.#leaveLine();
    } else if (this.#waitingSince === since) {
      this.#placeWritten = since;
      this.#placeWrittenAt = now;
    }
  }

  #leaveLine(): Promise<void> {
    return retryBusy(() => this.#kv.atomic().delete(this.#waiterKey).commit()).then(
      () => {},
      () => {}, // left in line: the place expires by itself
    );
  }

  /** Leaves the line when nobody here waits or tries any more (demand went away). */
  #scheduleLeave(): void {
    if (this.#leaveTimer !== undefined) cancelAfter(this.#leaveTimer);
    this.#leaveTimer = after(this.#pollMs, () => {
      this.#leaveTimer = undefined;
      if (this.#waitingSince === undefined || this.#listeners.size > 0) return;
      if (this.#acquiring > 0 || Date.now() - this.#lastAttemptAt < this.#pollMs) {
        return this.#scheduleLeave();
      }
      this.#waitingSince = undefined;
      this.#placeWritten = undefined;
      void this.#leaveLine();
    }, true);
  }

  #startWaiting(): void {
    if (this.#leaveTimer !== undefined) {
      cancelAfter(this.#leaveTimer);
      this.#leaveTimer = undefined;
    }
    this.#backoffMs = this.#pollMs;
    this.#schedulePoll(this.#pollMs);
    if (this.#watch) this.#startWatches();
  }

  #stopWaiting(): void {
    if (this.#pollTimer !== undefined) {
      cancelAfter(this.#pollTimer);
      this.#pollTimer = undefined;
    }
    for (const reader of this.#watches) reader.cancel().catch(() => {});
    this.#watches = [];
    if (this.#waitingSince !== undefined) this.#scheduleLeave();
  }

  #schedulePoll(ms: number): void {
    if (this.#pollTimer !== undefined) cancelAfter(this.#pollTimer);
    const timer = after(ms, () => {
      if (this.#pollTimer !== timer) return;
      this.#pollTimer = undefined;
      void this.#poll();
    });
    this.#pollTimer = timer;
    keepAlive(timer); // a waiting acquire is work: it keeps the process alive
  }

  async #poll(): Promise<void> {
    if (this.#polling) {
      this.#pollAgain = true;
      return;
    }
    this.#polling = true;
    let next = this.#pollMs;
    try {
      const snapshot = await this.#read();
      if (this.#listeners.size === 0) return;
      await this.#joinLine().catch(() => {});
      const now = Date.now();
      const free = this.#free(snapshot, now).length;
      const ahead = this.#ahead(snapshot, now);
      if (free > ahead) {
        this.#backoffMs = this.#pollMs;
        this.#wake();
      } else {
        // While the line moves (slots are free for those ahead) or this process is first in
        // line, poll often; otherwise back off. Everyone looks again at the first expiry.
        this.#backoffMs = ahead === 0 || free > 0
          ? this.#pollMs
          : Math.min(this.#backoffMs * 2, POLL_BACKOFF * this.#pollMs);
        next = this.#backoffMs;
        for (const s of snapshot.slots) {
          if (s.expiresAt > now && s.expiresAt - now + 1 < next) next = s.expiresAt - now + 1;
        }
      }
    } catch {
      // KV failing: let the pools try, so their acquires report the error as the cause.
      this.#backoffMs = Math.min(this.#backoffMs * 2, POLL_BACKOFF * this.#pollMs);
      next = this.#backoffMs;
      this.#wake();
    } finally {
      this.#polling = false;
    }
    if (this.#listeners.size === 0) return;
    if (this.#pollAgain) {
      this.#pollAgain = false;
      next = 0;
    }
    // ±20 % jitter, so processes that started together do not poll together.
    this.#schedulePoll(Math.max(0, Math.round(next * (0.8 + Math.random() * 0.4))));
  }

  /** Watches the slots (10 keys per watch): a change of one triggers a poll at once. */
  #startWatches(): void {
    const watch = this.#kv.watch!.bind(this.#kv);
    for (let first = 0; first < this.limit; first += WATCH_KEYS) {
      const keys: (readonly BudgetKvKeyPart[])[] = [];
      for (let i = first; i < Math.min(this.limit, first + WATCH_KEYS); i++) {
        keys.push([...this.#prefix, "slot", i]);
      }
      let reader: ReadableStreamDefaultReader<readonly BudgetKvEntry[]>;
      try {
        reader = watch(keys).getReader();
      } catch {
        return; // watch unsupported here: the polls suffice
      }
      this.#watches.push(reader);
      void this.#follow(reader);
    }
  }

  async #follow(reader: ReadableStreamDefaultReader<readonly BudgetKvEntry[]>): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || !this.#watches.includes(reader)) return;
        const now = Date.now();
        const freed = value.some((e) =>
          e.versionstamp === null || (decode(e.value)?.[0] ?? Infinity) <= now
        );
        if (freed && this.#listeners.size > 0) {
          this.#schedulePoll(0);
        }
      }
    } catch {
      // the watch broke (handle closed, remote error): the polls go on
    }
  }
}
