/**
 * Memory: the heap each pool spends per idle resource and per queued waiter, measured over
 * 100 000 of each with the runtime's own tools after a forced full GC (`node --expose-gc`,
 * `deno --v8-flags=--expose-gc`, `Bun.gc(true)`).
 *
 * The resources themselves are made before the first reading and handed to the pool by its
 * factory, so only the pool's own bookkeeping counts. A queued waiter counts everything one
 * `acquire()` that has to wait leaves on the heap: the promise the caller holds, the pool's
 * record of it, and its timer or abort listener when it has one (the caller's signal itself
 * is made beforehand). Each figure is the median of `--repeats` measurements, each in a fresh
 * process.
 *
 * Each contender is measured in a process of its own (this script again, same runtime and flags),
 * which exits without closing its pools: closing 100 000 idle resources is quadratic in some.
 *
 * Usage: `<runtime> [gc flag] bench/memory.ts [--count 100000] [--repeats 3] [--json path]`
 *
 * @module
 */

import { execFile } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { createPool } from "generic-pool";
import { Pool as TarnPool } from "tarn";
import { Pool } from "../mod.ts";
import { FloorPool } from "./_floor.ts";
import { FakeClient, pgPool } from "./_pg_pool.ts";
import {
  collect,
  count,
  heapUsed,
  machine,
  median,
  option,
  progress,
  RUNTIME,
  runtimeVersion,
  table,
  writeJson,
} from "./_env.ts";

const N = count("count", 100_000);
if (N % 10 !== 0) throw new RangeError("--count must be a multiple of 10");
const repeats = count("repeats", 3);
const jsonPath = option("json");
const TIMEOUT_MS = 30_000;

class Conn {
  uses = 0;
}

/** A pool reduced to what the measurements need; `H` is what an acquire resolves with. */
interface Subject<H = unknown> {
  acquire(): Promise<H>;
  release(handle: H): unknown;
  close(): Promise<unknown>;
}

/** How a waiter is configured. */
type WaitKind = "plain" | "deadline" | "signal";

interface Contender {
  name: string;
  /** A pool of at most `max`, whose factory hands out `supply()`; `kind` for its acquires. */
  make(max: number, supply: () => Conn, kind: WaitKind, signals: AbortSignal[]): Subject;
  /** The kinds of wait it supports. */
  kinds: WaitKind[];
}

const CONTENDERS: Contender[] = [
  {
    name: "floor",
    kinds: ["plain", "deadline", "signal"],
    make(max, supply, kind, signals) {
      const pool = new FloorPool(Array.from({ length: max }, supply), {
        acquireTimeoutMs: kind === "deadline" ? TIMEOUT_MS : Infinity,
      });
      let i = 0;
      return {
        acquire: kind === "signal" ? () => pool.acquire(signals[i++]) : () => pool.acquire(),
        release: (conn) => pool.release(conn as Conn),
        close: () => Promise.resolve(),
      };
    },
  },
  {
    name: "edgepool",
    kinds: ["plain", "deadline", "signal"],
    make(max, supply, kind, signals) {
      const pool = new Pool<Conn>({ create: supply }, {
        max,
        acquireTimeoutMs: kind === "deadline" ? TIMEOUT_MS : Infinity,
      });
      let i = 0;
      return {
        acquire: kind === "signal"
          ? () => pool.acquire({ signal: signals[i++] })
          : () => pool.acquire(),
        release: (lease) => (lease as { release(): Promise<void> }).release(),
        close: () => pool.close(),
      };
    },
  },
  {
    name: "generic-pool",
    kinds: ["plain", "deadline"],
    make(max, supply, kind) {
      const pool = createPool<Conn>({
        create: () => Promise.resolve(supply()),
        destroy: () => Promise.resolve(),
      }, { max, ...(kind === "deadline" ? { acquireTimeoutMillis: TIMEOUT_MS } : {}) });
      return {
        acquire: () => pool.acquire(),
        release: (conn) => pool.release(conn as Conn),
        close: async () => {
          await pool.drain();
          await pool.clear();
        },
      };
    },
  },
  {
    name: "tarn",
    kinds: ["deadline"], // its acquire timeout cannot be turned off
    make(max, supply) {
      const pool = new TarnPool<Conn>({
        create: () => Promise.resolve(supply()),
        destroy: () => {},
        min: 0,
        max,
        acquireTimeoutMillis: TIMEOUT_MS,
      });
      return {
        acquire: () => pool.acquire().promise,
        release: (conn) => pool.release(conn as Conn),
        close: () => pool.destroy(),
      };
    },
  },
  {
    name: "pg-pool",
    kinds: ["plain", "deadline"],
    make(max, supply, kind) {
      // pg-pool makes its clients; each is taken from the pre-made supply, as for the others.
      const { pool } = pgPool({
        max,
        connectionTimeoutMillis: kind === "deadline" ? TIMEOUT_MS : 0,
        idleTimeoutMillis: 10_000, // its default: a timer per idle client
        supply: supply as unknown as () => FakeClient,
      });
      return {
        acquire: () => pool.connect(),
        release: (client) => (client as FakeClient).release(),
        close: () => pool.end(),
      };
    },
  },
];

/** Keeps the pool under measurement reachable until its heap was read. */
const retained: { value: unknown } = { value: undefined };
/** What the measurements left behind; the process exits without cleaning up. */
const leftovers: unknown[] = [];

/** The heap after pending jobs ran and a full GC. */
async function settledHeap(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 10));
  collect();
  return heapUsed();
}

/** Bytes per idle resource: `N` acquired, all released, against the empty pool. */
async function perIdle(c: Contender, n: number): Promise<number> {
  const conns = c.name === "pg-pool"
    ? Array.from({ length: n }, (_, i) => new FakeClient(i, 0))
    : Array.from({ length: n }, () => new Conn());
  let next = 0;
  const supply = () => conns[next++] as Conn;
  const handles = new Array<unknown>(n).fill(0);
  // Live through both readings, whatever the pool keeps: only the pool's own heap counts.
  const kept: unknown[] = [conns, handles];
  retained.value = kept;
  const before = await settledHeap();
  // The floor cannot create: it starts empty and is given the resources by release().
  const pool = c.make(c.name === "floor" ? 0 : n, supply, "plain", []);
  kept.push(pool);
  if (c.name === "floor") {
    for (let i = 0; i < n; i++) pool.release(supply());
  } else {
    for (let i = 0; i < n; i++) handles[i] = await pool.acquire();
    for (let i = 0; i < n; i++) {
      await pool.release(handles[i]);
      handles[i] = 0;
    }
  }
  const after = await settledHeap();
  retained.value = undefined;
  if (next !== n) throw new Error(`${c.name}: ${next} resources made, expected ${n}`);
  // Not closed: closing 100 000 idle resources is quadratic in some pools, and the process
  // measuring one contender exits when it is done.
  return (after - before) / n;
}

/** Bytes per queued waiter: one resource held, `n` acquires waiting. */
async function perWaiter(c: Contender, kind: WaitKind, n: number): Promise<number> {
  const supply = c.name === "pg-pool"
    ? () => new FakeClient(0, 0) as unknown as Conn
    : () => new Conn();
  const signals = kind === "signal"
    ? Array.from({ length: n }, () => new AbortController().signal)
    : [];
  const pool = c.make(1, supply, kind, signals);
  retained.value = pool;
  const held = await pool.acquire();
  const waits = new Array<Promise<unknown>>(n).fill(Promise.resolve());
  const before = await settledHeap();
  for (let i = 0; i < n; i++) waits[i] = pool.acquire();
  const after = await settledHeap();
  retained.value = undefined;
  // Left waiting: serving 100 000 waiters is quadratic in some pools, and the process exits
  // long before a 30 s deadline fires. Kept reachable, so nothing of it is collected meanwhile.
  leftovers.push(pool, held, waits);
  return (after - before) / n;
}

/** One contender's figures (bytes): one measurement each, or medians over the repeats. */
interface Row {
  name: string;
  idle: number;
  waiter: Partial<Record<WaitKind, number>>;
}

/**
 * Waiters first, the idle resources last; nothing is cleaned up (the process exits). A tenth of
 * each measurement runs first, so code compiled on first use is not counted against the pool.
 */
async function measureOne(c: Contender): Promise<Row> {
  const waiter: Row["waiter"] = {};
  for (const k of c.kinds) {
    await perWaiter(c, k, N / 10);
    waiter[k] = await perWaiter(c, k, N);
  }
  await perIdle(c, N / 10);
  return { name: c.name, idle: await perIdle(c, N), waiter };
}

/** This script again, with the same runtime and GC flag, measuring one contender. */
function child(name: string): Promise<Row> {
  const script = fileURLToPath(import.meta.url);
  const rest = ["--one", name, "--count", String(N)];
  const argv = RUNTIME === "deno"
    ? ["run", "-A", "--v8-flags=--expose-gc", script, ...rest]
    : RUNTIME === "node"
    ? ["--expose-gc", script, ...rest]
    : [script, ...rest];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, argv, { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`memory ${name} failed: ${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split("\n").pop()!) as Row);
    });
  });
}

/** What `--json` writes: bytes, medians over the repeats. */
export interface MemoryResults {
  kind: "memory";
  runtime: string;
  version: string;
  machine: ReturnType<typeof machine>;
  gc: string;
  count: number;
  repeats: number;
  rows: Row[];
}

const one = option("one");
const gcKind = collect();
if (one !== undefined) {
  // A child: one contender, then exit at once (its pools are not closed; see perIdle).
  const c = CONTENDERS.find((x) => x.name === one);
  if (c === undefined) throw new Error(`memory: no contender named ${one}`);
  console.log(JSON.stringify(await measureOne(c)));
  process.exit(0);
}
if (gcKind === undefined) {
  progress(
    "memory: no GC hook: run node with --expose-gc, deno with --v8-flags=--expose-gc, or bun",
  );
}
const info = machine();
progress(`${RUNTIME}: memory over ${N} idle resources and ${N} waiters, ${repeats} repeats`);
const trials = CONTENDERS.map(() => [] as Row[]);
for (let r = 0; r < repeats; r++) {
  const t0 = performance.now();
  for (let i = 0; i < CONTENDERS.length; i++) {
    const t = performance.now();
    trials[i].push(await child(CONTENDERS[i].name));
    if (process.env.MEM_DEBUG) {
      progress(`${CONTENDERS[i].name} ${(performance.now() - t).toFixed(0)} ms`);
    }
  }
  progress(`  repeat ${r + 1}/${repeats} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
const rows: Row[] = CONTENDERS.map((c, i) => {
  const mid = (xs: (number | undefined)[]) => Math.round(median(xs as number[]));
  return {
    name: c.name,
    idle: mid(trials[i].map((t) => t.idle)),
    waiter: Object.fromEntries(c.kinds.map((k) => [k, mid(trials[i].map((t) => t.waiter[k]))])),
  };
});

const bytes = (x: number | undefined) => x === undefined ? "–" : `${x} B`;
console.log(
  `\n${RUNTIME} ${runtimeVersion()}: heap bytes per idle resource and per queued waiter ` +
    `(${N} each, GC: ${gcKind ?? "none"}, median of ${repeats})\n`,
);
console.log(table(
  [
    "pool",
    "per idle resource",
    "per waiter",
    `per waiter, ${TIMEOUT_MS / 1000} s deadline`,
    "per waiter, AbortSignal",
  ],
  rows.map((r) => [
    r.name,
    bytes(r.idle),
    bytes(r.waiter.plain),
    bytes(r.waiter.deadline),
    bytes(r.waiter.signal),
  ]),
));

if (jsonPath !== undefined) {
  const out: MemoryResults = {
    kind: "memory",
    runtime: RUNTIME,
    version: runtimeVersion(),
    machine: info,
    gc: gcKind ?? "none",
    count: N,
    repeats,
    rows,
  };
  writeJson(jsonPath, out);
  progress(`wrote ${jsonPath}`);
}
