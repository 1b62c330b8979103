/**
 * The core bench cases, shared by `core_bench.ts` (`deno bench`) and `run_mitata.ts` (mitata
 * under Bun and Node). A case builds its fixture outside the timed function: a pool pre-warmed
 * with its resources idle. The timed function awaits all of its work and leaves the pool as it
 * found it, which `check()` verifies after a trial run.
 *
 * Every contender gets its own task functions (no shared adapter), so that one library's type
 * feedback never slows another's call sites. pg-pool runs over a scripted client (`_pg_pool.ts`). Options are made equivalent: the same `max`, no
 * validation, no lifetime, idle timeouts too long to fire during a run, idle resources taken
 * LIFO where the library lets us choose. Where edgepool's default differs from its rivals',
 * the case says so: its `acquireTimeoutMs` defaults to 30 s, so the no-timeout cases pass
 * `Infinity`; tarn has no way to turn its acquire timeout off (30 s by default, two timers per
 * acquire), so its no-timeout rows run with it.
 *
 * @module
 */

import { createPool, type Pool as GenericPool } from "generic-pool";
import { Pool as TarnPool } from "tarn";
import { Pool, type PoolEvent, type PoolOptions } from "../mod.ts";
import { FloorPool } from "./_floor.ts";
import { type PgPool, pgPool } from "./_pg_pool.ts";

/** The pool size of the acquire cases. */
export const MAX = 10;
/** Concurrent tasks per iteration of the contended cases. */
export const TASKS = 1000;
/** The acquire deadline of the timeout cases. */
export const TIMEOUT_MS = 30_000;
/** Idle resources of the reaper-tick case. */
export const REAP_IDLE = 1000;
/** Nothing ages out during a run. */
const IDLE_TIMEOUT_MS = 3_600_000;
/** The reaper interval of the reaper-tick case: long, so only our calls run the tick. */
const REAP_INTERVAL_MS = 3_600_000;
/** The leak threshold of the leak-detection cases: never reached during a run. */
const LEAK_MS = 60_000;
/** Items of the pooled-map cases. */
export const MAP_ITEMS = 100_000;

/** One bench: a group, a name, and how to build its fixture. */
export interface Case {
  group: string;
  name: string;
  /** The floor of the group: ratios are to it. */
  baseline?: boolean;
  /** Operations (acquire + release) per call of `fn`, to report time per operation. */
  ops: number;
  make(): Fixture | Promise<Fixture>;
}

/** What a case runs. */
export interface Fixture {
  /**
   * One timed iteration. An async one must be an `async function` (or bound from one):
   * `Deno.bench` tells async benches from sync ones by the function's constructor.
   */
  fn: () => void | Promise<void>;
  /** Throws unless the pool is back at rest: all idle, nobody waiting, nothing created anew. */
  check(): void;
  /** Frees the pool; nothing keeps the process alive afterwards. */
  close(): Promise<void>;
}

/** The pooled "connection". */
class Conn {
  readonly id: number;
  uses = 0;
  constructor(id: number) {
    this.id = id;
  }
}

const TICK: Promise<void> = Promise.resolve();
/** Written by benches whose result would otherwise be dead code. */
export let sink: unknown = undefined;

function expect(what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) {
    throw new Error(`bench fixture not at rest: ${what} is ${actual}, expected ${expected}`);
  }
}

// ------------------------------------------------------------------ floor

function floorPool(timeoutMs = Infinity): FloorPool<Conn> {
  return new FloorPool(
    Array.from({ length: MAX }, (_, i) => new Conn(i + 1)),
    { acquireTimeoutMs: timeoutMs },
  );
}

function floorCheck(pool: FloorPool<Conn>): () => void {
  return () => {
    expect("floor idle", pool.idle, MAX);
    expect("floor waiting", pool.waiting, 0);
  };
}

async function floorOnce(pool: FloorPool<Conn>): Promise<void> {
  const conn = await pool.acquire();
  conn.uses++;
  pool.release(conn);
}

async function floorOnceSignal(pool: FloorPool<Conn>, signal: AbortSignal): Promise<void> {
  const conn = await pool.acquire(signal);
  conn.uses++;
  pool.release(conn);
}

async function floorTask(pool: FloorPool<Conn>): Promise<void> {
  const conn = await pool.acquire();
  conn.uses++;
  await TICK;
  pool.release(conn);
}

async function floorMany(pool: FloorPool<Conn>): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = floorTask(pool);
  await Promise.all(all);
}

async function floorTaskSignal(pool: FloorPool<Conn>, signal: AbortSignal): Promise<void> {
  const conn = await pool.acquire(signal);
  conn.uses++;
  await TICK;
  pool.release(conn);
}

async function floorManySignal(pool: FloorPool<Conn>, signals: AbortSignal[]): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = floorTaskSignal(pool, signals[i]);
  await Promise.all(all);
}

/**
 * The floor behind edgepool's API: a lease object per acquire that refuses its value once
 * ended, and a `release()` returning a promise that the caller awaits (as `await using` does).
 * What it costs over the floor is what the API itself costs, whatever the pool behind it.
 */
class FloorLease {
  #conn: Conn | undefined;
  readonly #pool: FloorPool<Conn>;
  constructor(conn: Conn, pool: FloorPool<Conn>) {
    this.#conn = conn;
    this.#pool = pool;
  }
  get value(): Conn {
    if (this.#conn === undefined) throw new Error("the lease has ended");
    return this.#conn;
  }
  release(): Promise<void> {
    const conn = this.#conn;
    if (conn !== undefined) {
      this.#conn = undefined;
      this.#pool.release(conn);
    }
    return TICK;
  }
}

async function floorLeaseOnce(pool: FloorPool<Conn>): Promise<void> {
  const lease = new FloorLease(await pool.acquire(), pool);
  lease.value.uses++;
  await lease.release();
}

async function floorLeaseTask(pool: FloorPool<Conn>): Promise<void> {
  const lease = new FloorLease(await pool.acquire(), pool);
  lease.value.uses++;
  await TICK;
  await lease.release();
}

async function floorLeaseMany(pool: FloorPool<Conn>): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = floorLeaseTask(pool);
  await Promise.all(all);
}

/** The floor plus what edgepool's leak detection does per acquire: format a stack. */
async function floorOnceStack(pool: FloorPool<Conn>): Promise<void> {
  sink = new Error("acquired here").stack;
  const conn = await pool.acquire();
  conn.uses++;
  pool.release(conn);
}

/** The floor plus capturing a stack but formatting it only if a leak is ever reported. */
async function floorOnceLazyStack(pool: FloorPool<Conn>): Promise<void> {
  sink = new Error("acquired here");
  const conn = await pool.acquire();
  conn.uses++;
  pool.release(conn);
}

async function floorTaskStack(pool: FloorPool<Conn>): Promise<void> {
  const stack = new Error("acquired here").stack;
  const conn = await pool.acquire();
  conn.uses++;
  await TICK;
  sink = stack;
  pool.release(conn);
}

async function floorManyStack(pool: FloorPool<Conn>): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = floorTaskStack(pool);
  await Promise.all(all);
}

async function floorTaskLazyStack(pool: FloorPool<Conn>): Promise<void> {
  const error = new Error("acquired here");
  const conn = await pool.acquire();
  conn.uses++;
  await TICK;
  sink = error;
  pool.release(conn);
}

async function floorManyLazyStack(pool: FloorPool<Conn>): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = floorTaskLazyStack(pool);
  await Promise.all(all);
}

// ------------------------------------------------------------------ edgepool

async function edgePool(options: PoolOptions, size = MAX): Promise<Pool<Conn>> {
  let n = 0;
  const pool = new Pool<Conn>({ create: () => new Conn(++n), destroy: () => {} }, {
    max: size,
    maxLifetimeMs: 0,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
    ...options,
  });
  const leases = await Promise.all(Array.from({ length: size }, () => pool.acquire()));
  for (const lease of leases) await lease.release();
  return pool;
}

function edgeCheck(pool: Pool<Conn>, size = MAX): () => void {
  return () => {
    const s = pool.stats();
    expect("edgepool idle", s.idle, size);
    expect("edgepool waiting", s.waiting, 0);
    expect("edgepool created", s.created, size);
  };
}

async function edgeOnce(pool: Pool<Conn>): Promise<void> {
  const lease = await pool.acquire();
  lease.value.uses++;
  await lease.release();
}

async function edgeOnceNoAwait(pool: Pool<Conn>): Promise<void> {
  const lease = await pool.acquire();
  lease.value.uses++;
  void lease.release();
}

async function edgeOnceSignal(pool: Pool<Conn>, signal: AbortSignal): Promise<void> {
  const lease = await pool.acquire({ signal });
  lease.value.uses++;
  await lease.release();
}

async function edgeTask(pool: Pool<Conn>): Promise<void> {
  const lease = await pool.acquire();
  lease.value.uses++;
  await TICK;
  await lease.release();
}

async function edgeMany(pool: Pool<Conn>): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = edgeTask(pool);
  await Promise.all(all);
}

async function edgeTaskNoAwait(pool: Pool<Conn>): Promise<void> {
  const lease = await pool.acquire();
  lease.value.uses++;
  await TICK;
  void lease.release();
}

async function edgeManyNoAwait(pool: Pool<Conn>): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = edgeTaskNoAwait(pool);
  await Promise.all(all);
}

async function edgeTaskSignal(pool: Pool<Conn>, signal: AbortSignal): Promise<void> {
  const lease = await pool.acquire({ signal });
  lease.value.uses++;
  await TICK;
  await lease.release();
}

async function edgeManySignal(pool: Pool<Conn>, signals: AbortSignal[]): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = edgeTaskSignal(pool, signals[i]);
  await Promise.all(all);
}

// ------------------------------------------------------------------ generic-pool

async function genericPool(timeoutMs?: number): Promise<GenericPool<Conn>> {
  let n = 0;
  const pool = createPool<Conn>({
    create: () => Promise.resolve(new Conn(++n)),
    destroy: () => Promise.resolve(),
  }, {
    max: MAX,
    min: 0,
    fifo: false, // LIFO idle, like the others
    testOnBorrow: false,
    ...(timeoutMs === undefined ? {} : { acquireTimeoutMillis: timeoutMs }),
  });
  const conns = await Promise.all(Array.from({ length: MAX }, () => pool.acquire()));
  for (const conn of conns) await pool.release(conn);
  return pool;
}

function genericCheck(pool: GenericPool<Conn>): () => void {
  return () => {
    expect("generic-pool available", pool.available, MAX);
    expect("generic-pool size", pool.size, MAX);
    expect("generic-pool pending", pool.pending, 0);
  };
}

async function genericClose(pool: GenericPool<Conn>): Promise<void> {
  await pool.drain();
  await pool.clear();
}

async function genericOnce(pool: GenericPool<Conn>): Promise<void> {
  const conn = await pool.acquire();
  conn.uses++;
  await pool.release(conn);
}

async function genericTask(pool: GenericPool<Conn>): Promise<void> {
  const conn = await pool.acquire();
  conn.uses++;
  await TICK;
  await pool.release(conn);
}

async function genericMany(pool: GenericPool<Conn>): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = genericTask(pool);
  await Promise.all(all);
}

// ------------------------------------------------------------------ tarn

async function tarnPool(timeoutMs?: number, size = MAX): Promise<TarnPool<Conn>> {
  let n = 0;
  const pool = new TarnPool<Conn>({
    create: () => Promise.resolve(new Conn(++n)),
    destroy: () => {},
    min: 0,
    max: size,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
    ...(timeoutMs === undefined ? {} : { acquireTimeoutMillis: timeoutMs }),
  });
  const conns = await Promise.all(Array.from({ length: size }, () => pool.acquire().promise));
  for (const conn of conns) pool.release(conn);
  return pool;
}

function tarnCheck(pool: TarnPool<Conn>, size = MAX): () => void {
  return () => {
    expect("tarn free", pool.numFree(), size);
    expect("tarn used", pool.numUsed(), 0);
    expect("tarn pending acquires", pool.numPendingAcquires(), 0);
    expect("tarn pending creates", pool.numPendingCreates(), 0);
  };
}

async function tarnClose(pool: TarnPool<Conn>): Promise<void> {
  await pool.destroy();
}

async function tarnOnce(pool: TarnPool<Conn>): Promise<void> {
  const conn = await pool.acquire().promise;
  conn.uses++;
  pool.release(conn);
}

async function tarnTask(pool: TarnPool<Conn>): Promise<void> {
  const conn = await pool.acquire().promise;
  conn.uses++;
  await TICK;
  pool.release(conn);
}

async function tarnMany(pool: TarnPool<Conn>): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = tarnTask(pool);
  await Promise.all(all);
}

// ------------------------------------------------------------------ pg-pool

async function pgPoolOf(timeoutMs?: number): Promise<PgPool> {
  const { pool } = pgPool({
    max: MAX,
    connectionTimeoutMillis: timeoutMs ?? 0,
    idleTimeoutMillis: IDLE_TIMEOUT_MS, // armed on every release above min, as pg-pool does
  });
  const clients = await Promise.all(Array.from({ length: MAX }, () => pool.connect()));
  for (const client of clients) client.release();
  return pool;
}

function pgCheck(pool: PgPool): () => void {
  return () => {
    expect("pg-pool idle", pool.idleCount, MAX);
    expect("pg-pool total", pool.totalCount, MAX);
    expect("pg-pool waiting", pool.waitingCount, 0);
  };
}

async function pgOnce(pool: PgPool): Promise<void> {
  const client = await pool.connect();
  client.uses++;
  client.release();
}

async function pgTask(pool: PgPool): Promise<void> {
  const client = await pool.connect();
  client.uses++;
  await TICK;
  client.release();
}

async function pgMany(pool: PgPool): Promise<void> {
  const all = new Array<Promise<void>>(TASKS);
  for (let i = 0; i < TASKS; i++) all[i] = pgTask(pool);
  await Promise.all(all);
}

function pgRow(
  many: boolean,
  timeoutMs?: number,
): [name: string, make: () => Promise<Fixture>] {
  return [
    "pg-pool",
    async () => {
      const pool = await pgPoolOf(timeoutMs);
      return {
        fn: (many ? pgMany : pgOnce).bind(undefined, pool),
        check: pgCheck(pool),
        close: () => pool.end(),
      };
    },
  ];
}

// ------------------------------------------------------------------ fixtures

function signals(n: number): AbortSignal[] {
  return Array.from({ length: n }, () => new AbortController().signal);
}

const NOTHING = (): Promise<void> => Promise.resolve();

// ------------------------------------------------------------------ leak detection

/** What an events subscriber saw: a leak-detection case without one would capture nothing. */
interface Seen {
  n: number;
}

/** edgepool with an `onEvent` callback, so the acquirer's `Error` is captured when asked. */
async function edgeWithCallback(leakDetectionMs: number): Promise<[Pool<Conn>, Seen]> {
  const seen: Seen = { n: 0 };
  const onEvent = (_event: PoolEvent): void => {
    seen.n++;
  };
  const pool = await edgePool({ acquireTimeoutMs: Infinity, leakDetectionMs, onEvent });
  return [pool, seen];
}

/** edgepool with a `pool.events()` iterator read in the background. */
async function edgeWithReader(leakDetectionMs: number): Promise<[Pool<Conn>, Seen]> {
  const seen: Seen = { n: 0 };
  const pool = await edgePool({ acquireTimeoutMs: Infinity, leakDetectionMs });
  const events = pool.events({ bufferSize: 4 * TASKS }); // an iteration's events fit: none dropped
  void (async () => {
    for await (const _event of events) seen.n++;
  })();
  return [pool, seen];
}

/** At rest, and the subscriber received events: it was live while the pool worked. */
function seenCheck(pool: Pool<Conn>, seen: Seen): () => void {
  const atRest = edgeCheck(pool);
  return () => {
    atRest();
    if (seen.n === 0) throw new Error("bench fixture has no live events subscriber");
  };
}

function leakRows(many: boolean): [name: string, make: () => Fixture | Promise<Fixture>][] {
  const edgeFn = many ? edgeMany : edgeOnce;
  const subscribed =
    (make: (ms: number) => Promise<[Pool<Conn>, Seen]>, ms: number) => async () => {
      const [pool, seen] = await make(ms);
      return {
        fn: edgeFn.bind(undefined, pool),
        check: seenCheck(pool, seen),
        close: () => pool.close(),
      };
    };
  return [
    ["floor", () => {
      const pool = floorPool();
      return {
        fn: (many ? floorMany : floorOnce).bind(undefined, pool),
        check: floorCheck(pool),
        close: NOTHING,
      };
    }],
    [`edgepool, leakDetectionMs ${LEAK_MS}, no subscriber (captures nothing)`, async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity, leakDetectionMs: LEAK_MS });
      return {
        fn: edgeFn.bind(undefined, pool),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
    ["edgepool + onEvent, leak detection off", subscribed(edgeWithCallback, 0)],
    ["edgepool + events() read, leak detection off", subscribed(edgeWithReader, 0)],
    [`edgepool + onEvent, leakDetectionMs ${LEAK_MS}`, subscribed(edgeWithCallback, LEAK_MS)],
    [`edgepool + events() read, leakDetectionMs ${LEAK_MS}`, subscribed(edgeWithReader, LEAK_MS)],
    ["floor + new Error(), stack read lazily", () => {
      const pool = floorPool();
      return {
        fn: (many ? floorManyLazyStack : floorOnceLazyStack).bind(undefined, pool),
        check: floorCheck(pool),
        close: NOTHING,
      };
    }],
    ["floor + new Error().stack", () => {
      const pool = floorPool();
      return {
        fn: (many ? floorManyStack : floorOnceStack).bind(undefined, pool),
        check: floorCheck(pool),
        close: NOTHING,
      };
    }],
  ];
}

// ------------------------------------------------------------------ pooled map

const ITEMS: readonly number[] = Array.from({ length: MAP_ITEMS }, (_, i) => i);
/** The sum of every result: proves that each item ran exactly once. */
const MAP_SUM = MAP_ITEMS * (MAP_ITEMS - 1);

/** The work per item: it returns a promise, as pooled work does. */
function mapItem(conn: Conn, item: number): Promise<number> {
  conn.uses++;
  return Promise.resolve(item * 2);
}

function mapCheck(atRest: () => void): () => void {
  return () => {
    atRest();
    expect("map sum", sink, MAP_SUM);
  };
}

interface Cursor {
  i: number;
}

async function floorMapWorker(pool: FloorPool<Conn>, out: number[], next: Cursor): Promise<void> {
  while (next.i < MAP_ITEMS) {
    const i = next.i++;
    const conn = await pool.acquire();
    try {
      out[i] = await mapItem(conn, ITEMS[i]);
    } finally {
      pool.release(conn);
    }
  }
}

/** The hand-written loop: `MAX` workers pull the next item, lease, run it, release. */
async function floorMap(pool: FloorPool<Conn>, out: number[]): Promise<void> {
  const next: Cursor = { i: 0 };
  const workers = new Array<Promise<void>>(MAX);
  for (let w = 0; w < MAX; w++) workers[w] = floorMapWorker(pool, out, next);
  await Promise.all(workers);
  let sum = 0;
  for (let i = 0; i < MAP_ITEMS; i++) sum += out[i];
  sink = sum;
}

async function edgeMapWorker(pool: Pool<Conn>, out: number[], next: Cursor): Promise<void> {
  while (next.i < MAP_ITEMS) {
    const i = next.i++;
    const lease = await pool.acquire();
    try {
      out[i] = await mapItem(lease.value, ITEMS[i]);
    } finally {
      await lease.release();
    }
  }
}

async function edgeMapLoop(pool: Pool<Conn>, out: number[]): Promise<void> {
  const next: Cursor = { i: 0 };
  const workers = new Array<Promise<void>>(MAX);
  for (let w = 0; w < MAX; w++) workers[w] = edgeMapWorker(pool, out, next);
  await Promise.all(workers);
  let sum = 0;
  for (let i = 0; i < MAP_ITEMS; i++) sum += out[i];
  sink = sum;
}

async function edgeUseWorker(pool: Pool<Conn>, out: number[], next: Cursor): Promise<void> {
  while (next.i < MAP_ITEMS) {
    const i = next.i++;
    out[i] = await pool.use((conn) => mapItem(conn, ITEMS[i]));
  }
}

async function edgeUseLoop(pool: Pool<Conn>, out: number[]): Promise<void> {
  const next: Cursor = { i: 0 };
  const workers = new Array<Promise<void>>(MAX);
  for (let w = 0; w < MAX; w++) workers[w] = edgeUseWorker(pool, out, next);
  await Promise.all(workers);
  let sum = 0;
  for (let i = 0; i < MAP_ITEMS; i++) sum += out[i];
  sink = sum;
}

async function edgeMap(pool: Pool<Conn>, ordered: boolean): Promise<void> {
  let sum = 0;
  for await (const r of pool.map(ITEMS, mapItem, { concurrency: MAX, ordered })) sum += r;
  sink = sum;
}

// ------------------------------------------------------------------ the cases

function groupCases(
  group: string,
  ops: number,
  rows: [name: string, make: () => Fixture | Promise<Fixture>][],
): Case[] {
  return rows.map(([name, make], i) => ({ group, name, baseline: i === 0, ops, make }));
}

/** The row of the floor behind edgepool's API (see `FloorLease`). */
export const FLOOR_API = "floor with edgepool's API (a lease, release awaited)";

/** The group names of the cases, for filters and reports. */
export const GROUPS = {
  one: "uncontended acquire+release",
  many: `${TASKS} tasks on max ${MAX}`,
  oneTimeout: `uncontended acquire+release, ${TIMEOUT_MS / 1000} s timeout`,
  manyTimeout: `${TASKS} tasks on max ${MAX}, ${TIMEOUT_MS / 1000} s timeout`,
  oneSignal: "uncontended acquire+release, AbortSignal",
  manySignal: `${TASKS} tasks on max ${MAX}, AbortSignal each`,
  oneLeak: "uncontended acquire+release, leak detection",
  manyLeak: `${TASKS} tasks on max ${MAX}, leak detection`,
  reaper: `reaper tick over ${REAP_IDLE} idle`,
  map: `pooled map over ${MAP_ITEMS} items, concurrency ${MAX}`,
} as const;

/** Every case, in the order they run. */
export const CASES: Case[] = [
  ...groupCases(GROUPS.one, 1, [
    ["floor", () => {
      const pool = floorPool();
      return { fn: floorOnce.bind(undefined, pool), check: floorCheck(pool), close: NOTHING };
    }],
    [FLOOR_API, () => {
      const pool = floorPool();
      return { fn: floorLeaseOnce.bind(undefined, pool), check: floorCheck(pool), close: NOTHING };
    }],
    ["edgepool", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      return {
        fn: edgeOnce.bind(undefined, pool),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
    ["edgepool, release() not awaited", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      return {
        fn: edgeOnceNoAwait.bind(undefined, pool),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
    ["generic-pool", async () => {
      const pool = await genericPool();
      return {
        fn: genericOnce.bind(undefined, pool),
        check: genericCheck(pool),
        close: () => genericClose(pool),
      };
    }],
    ["tarn (30 s timeout, always on)", async () => {
      const pool = await tarnPool();
      return {
        fn: tarnOnce.bind(undefined, pool),
        check: tarnCheck(pool),
        close: () => tarnClose(pool),
      };
    }],
    pgRow(false),
  ]),
  ...groupCases(GROUPS.many, TASKS, [
    ["floor", () => {
      const pool = floorPool();
      return { fn: floorMany.bind(undefined, pool), check: floorCheck(pool), close: NOTHING };
    }],
    [FLOOR_API, () => {
      const pool = floorPool();
      return { fn: floorLeaseMany.bind(undefined, pool), check: floorCheck(pool), close: NOTHING };
    }],
    ["edgepool", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      return {
        fn: edgeMany.bind(undefined, pool),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
    ["edgepool, release() not awaited", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      return {
        fn: edgeManyNoAwait.bind(undefined, pool),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
    ["generic-pool", async () => {
      const pool = await genericPool();
      return {
        fn: genericMany.bind(undefined, pool),
        check: genericCheck(pool),
        close: () => genericClose(pool),
      };
    }],
    ["tarn (30 s timeout, always on)", async () => {
      const pool = await tarnPool();
      return {
        fn: tarnMany.bind(undefined, pool),
        check: tarnCheck(pool),
        close: () => tarnClose(pool),
      };
    }],
    pgRow(true),
  ]),
  ...groupCases(GROUPS.oneTimeout, 1, [
    ["floor", () => {
      const pool = floorPool(TIMEOUT_MS);
      return { fn: floorOnce.bind(undefined, pool), check: floorCheck(pool), close: NOTHING };
    }],
    ["edgepool", async () => {
      const pool = await edgePool({ acquireTimeoutMs: TIMEOUT_MS });
      return {
        fn: edgeOnce.bind(undefined, pool),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
    ["generic-pool", async () => {
      const pool = await genericPool(TIMEOUT_MS);
      return {
        fn: genericOnce.bind(undefined, pool),
        check: genericCheck(pool),
        close: () => genericClose(pool),
      };
    }],
    ["tarn", async () => {
      const pool = await tarnPool(TIMEOUT_MS);
      return {
        fn: tarnOnce.bind(undefined, pool),
        check: tarnCheck(pool),
        close: () => tarnClose(pool),
      };
    }],
    pgRow(false, TIMEOUT_MS),
  ]),
  ...groupCases(GROUPS.manyTimeout, TASKS, [
    ["floor", () => {
      const pool = floorPool(TIMEOUT_MS);
      return { fn: floorMany.bind(undefined, pool), check: floorCheck(pool), close: NOTHING };
    }],
    ["edgepool", async () => {
      const pool = await edgePool({ acquireTimeoutMs: TIMEOUT_MS });
      return {
        fn: edgeMany.bind(undefined, pool),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
    ["generic-pool", async () => {
      const pool = await genericPool(TIMEOUT_MS);
      return {
        fn: genericMany.bind(undefined, pool),
        check: genericCheck(pool),
        close: () => genericClose(pool),
      };
    }],
    ["tarn", async () => {
      const pool = await tarnPool(TIMEOUT_MS);
      return {
        fn: tarnMany.bind(undefined, pool),
        check: tarnCheck(pool),
        close: () => tarnClose(pool),
      };
    }],
    pgRow(true, TIMEOUT_MS),
  ]),
  ...groupCases(GROUPS.oneSignal, 1, [
    ["floor", () => {
      const pool = floorPool();
      const signal = new AbortController().signal;
      return {
        fn: floorOnceSignal.bind(undefined, pool, signal),
        check: floorCheck(pool),
        close: NOTHING,
      };
    }],
    ["edgepool", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      const signal = new AbortController().signal;
      return {
        fn: edgeOnceSignal.bind(undefined, pool, signal),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
  ]),
  ...groupCases(GROUPS.manySignal, TASKS, [
    ["floor", () => {
      const pool = floorPool();
      const each = signals(TASKS);
      return {
        fn: floorManySignal.bind(undefined, pool, each),
        check: floorCheck(pool),
        close: NOTHING,
      };
    }],
    ["edgepool", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      const each = signals(TASKS);
      return {
        fn: edgeManySignal.bind(undefined, pool, each),
        check: edgeCheck(pool),
        close: () => pool.close(),
      };
    }],
  ]),
  ...groupCases(GROUPS.oneLeak, 1, leakRows(false)),
  ...groupCases(GROUPS.manyLeak, TASKS, leakRows(true)),
  ...groupCases(GROUPS.reaper, 1, [
    ["floor: one array pass, same checks", floorReaper],
    ["floor: linked list, plain loop", floorReaperList],
    ["floor: linked list, generator", floorReaperGenerator],
    ["edgepool: one reaper tick", edgeReaper],
    ["tarn: pool.check()", async () => {
      const pool = await tarnPool(undefined, REAP_IDLE);
      return {
        fn: () => pool.check(),
        check: tarnCheck(pool, REAP_IDLE),
        close: () => tarnClose(pool),
      };
    }],
  ]),
  ...groupCases(GROUPS.map, MAP_ITEMS, [
    ["floor: hand-written loop, 10 workers", () => {
      const pool = floorPool();
      const out = new Array<number>(MAP_ITEMS).fill(0);
      return {
        fn: floorMap.bind(undefined, pool, out),
        check: mapCheck(floorCheck(pool)),
        close: NOTHING,
      };
    }],
    ["edgepool: hand-written loop, acquire/release", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      const out = new Array<number>(MAP_ITEMS).fill(0);
      return {
        fn: edgeMapLoop.bind(undefined, pool, out),
        check: mapCheck(edgeCheck(pool)),
        close: () => pool.close(),
      };
    }],
    ["edgepool: hand-written loop, pool.use()", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      const out = new Array<number>(MAP_ITEMS).fill(0);
      return {
        fn: edgeUseLoop.bind(undefined, pool, out),
        check: mapCheck(edgeCheck(pool)),
        close: () => pool.close(),
      };
    }],
    ["edgepool: pool.map()", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      return {
        fn: edgeMap.bind(undefined, pool, true),
        check: mapCheck(edgeCheck(pool)),
        close: () => pool.close(),
      };
    }],
    ["edgepool: pool.map(), ordered: false", async () => {
      const pool = await edgePool({ acquireTimeoutMs: Infinity });
      return {
        fn: edgeMap.bind(undefined, pool, false),
        check: mapCheck(edgeCheck(pool)),
        close: () => pool.close(),
      };
    }],
  ]),
];

// ------------------------------------------------------------------ reaper tick

/** What edgepool's reaper looks at for an idle resource. */
class IdleRecord {
  prev: IdleRecord | undefined = undefined;
  next: IdleRecord | undefined = undefined;
  readonly expiresAt = Infinity;
  readonly returnedAt = performance.now();
}

/**
 * The checks of one aging pass over an idle resource: lifetime, idle timeout above `min`,
 * keepalive (off, as in edgepool's default). Returns how many would be destroyed.
 */
function ages(r: IdleRecord, now: number, surplus: number): number {
  if (r.expiresAt <= now) return 1;
  if (surplus > 0 && now - r.returnedAt >= IDLE_TIMEOUT_MS) return 1;
  return 0;
}

function idleRecords(): IdleRecord[] {
  const records = Array.from({ length: REAP_IDLE }, () => new IdleRecord());
  for (let i = 1; i < records.length; i++) {
    records[i - 1].next = records[i];
    records[i].prev = records[i - 1];
  }
  return records;
}

const noCheck = (): void => {};

function floorReaper(): Fixture {
  const records = idleRecords();
  return {
    fn: () => {
      const now = performance.now();
      let doomed = 0;
      for (let i = 0; i < records.length; i++) {
        doomed += ages(records[i], now, records.length - doomed);
      }
      sink = doomed;
    },
    check: noCheck,
    close: NOTHING,
  };
}

function floorReaperList(): Fixture {
  const head = idleRecords()[0];
  return {
    fn: () => {
      const now = performance.now();
      let doomed = 0;
      for (let r: IdleRecord | undefined = head; r !== undefined;) {
        const next: IdleRecord | undefined = r.next;
        doomed += ages(r, now, REAP_IDLE - doomed);
        r = next;
      }
      sink = doomed;
    },
    check: noCheck,
    close: NOTHING,
  };
}

function* walk(head: IdleRecord | undefined): IterableIterator<IdleRecord> {
  let r = head;
  while (r !== undefined) {
    const next = r.next;
    yield r;
    r = next;
  }
}

function floorReaperGenerator(): Fixture {
  const head = idleRecords()[0];
  return {
    fn: () => {
      const now = performance.now();
      let doomed = 0;
      for (const r of walk(head)) doomed += ages(r, now, REAP_IDLE - doomed);
      sink = doomed;
    },
    check: noCheck,
    close: NOTHING,
  };
}

/**
 * edgepool's reaper tick is private. It runs from a `setInterval` that the pool looks up on
 * `globalThis` when the reaper starts (so fake timers can drive it), so we catch the callback
 * there while the pool warms up, and call it ourselves.
 */
async function edgeReaper(): Promise<Fixture> {
  type SetInterval = (fn: () => void, ms?: number) => unknown;
  const global = globalThis as unknown as { setInterval: SetInterval };
  const real = global.setInterval;
  let tick: (() => void) | undefined;
  global.setInterval = (fn, ms) => {
    if (ms === REAP_INTERVAL_MS) tick = fn;
    return real(fn, ms);
  };
  let pool: Pool<Conn>;
  try {
    pool = await edgePool(
      { acquireTimeoutMs: Infinity, reapIntervalMs: REAP_INTERVAL_MS },
      REAP_IDLE,
    );
  } finally {
    global.setInterval = real;
  }
  if (tick === undefined) {
    throw new Error("edgepool's reaper interval was not seen: cannot time its tick");
  }
  return { fn: tick, check: edgeCheck(pool, REAP_IDLE), close: () => pool.close() };
}

const AsyncFunction = (async () => {}).constructor;

/** Builds every fixture in order, runs each once, and checks that it came back to rest. */
export async function fixtures(cases: readonly Case[] = CASES): Promise<Fixture[]> {
  const built: Fixture[] = [];
  for (const c of cases) {
    const fixture = await c.make();
    const result = fixture.fn();
    if (result instanceof Promise && !(fixture.fn instanceof AsyncFunction)) {
      throw new Error(`${c.group} / ${c.name}: fn returns a promise but is no async function`);
    }
    await result;
    try {
      fixture.check();
    } catch (error) {
      throw new Error(`${c.group} / ${c.name}: ${(error as Error).message}`);
    }
    built.push(fixture);
  }
  return built;
}

/** Closes every fixture. */
export async function closeAll(built: readonly Fixture[]): Promise<void> {
  await Promise.all(built.map((f) => f.close()));
}
