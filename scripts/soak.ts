/**
 * Soak: N acquire/release cycles on one pool under real timers (10 % aborted while queued, 5 %
 * timed out while queued, 1 % destroyed, the rest released, several lanes at once), checking
 * at checkpoints that the heap stays flat, that no listener is left on the signals passed in
 * and that no timer accumulates, and at the end that the pool's counters match what was done
 * exactly. Prints one JSON line, then a table; exits 1 when a check failed.
 *
 * Usage (any of the three runtimes; the GC flag lets the heap be measured after a full GC):
 *   node_modules/.bin/node --expose-gc scripts/soak.ts [cycles]
 *   node_modules/.bin/deno run -A --v8-flags=--expose-gc scripts/soak.ts [cycles]
 *   node_modules/.bin/bun scripts/soak.ts [cycles]
 * `cycles` (or EDGEPOOL_SOAK_CYCLES) defaults to 1 000 000; EDGEPOOL_SOAK_SEED picks the order
 * of the cycles; EDGEPOOL_SOAK_HEAP_MB is the allowed heap growth (default 4).
 *
 * @module
 */
import process from "node:process";
import { AcquireTimeoutError, type Lease, Pool } from "../mod.ts";
import { countingSignal } from "../tests/_signals.ts";

// ---------------------------------------------------------------- settings

const MAX = 8; // resources in the pool
const LANES = 12; // concurrent borrowers: more than MAX, so releases hand off to waiters
const CHUNK = 100; // cycles per round: exactly 84 released, 10 aborted, 5 timed out, 1 destroyed
const CHECKPOINTS = 10;
const CYCLES = count(process.argv[2] ?? process.env.EDGEPOOL_SOAK_CYCLES ?? "1000000");
const SEED = Number(process.env.EDGEPOOL_SOAK_SEED ?? 1) >>> 0;
const HEAP_LIMIT_MB = Number(process.env.EDGEPOOL_SOAK_HEAP_MB ?? 4);

function count(text: string): number {
  const n = Number(text.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < CHUNK) {
    console.error(`soak: cycles must be a whole number ≥ ${CHUNK}, received ${text}`);
    process.exit(2);
  }
  return n;
}

type Kind = "release" | "abort" | "timeout" | "destroy";
const TEMPLATE: Kind[] = [
  ...Array<Kind>(84).fill("release"),
  ...Array<Kind>(10).fill("abort"),
  ...Array<Kind>(5).fill("timeout"),
  ...Array<Kind>(1).fill("destroy"),
];

function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

// ---------------------------------------------------------------- instruments

const g = globalThis as unknown as Record<string, unknown>;
const runtime = "Deno" in g ? "deno" : "Bun" in g ? "bun" : "node";

/** A full GC where the runtime lets us ask for one. */
function collect(): string {
  const bun = g.Bun as { gc?: (force: boolean) => void } | undefined;
  if (typeof bun?.gc === "function") {
    bun.gc(true);
    return "Bun.gc";
  }
  if (typeof g.gc === "function") {
    (g.gc as () => void)();
    (g.gc as () => void)();
    return "gc";
  }
  return "none";
}

function heapMB(): number {
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** Timers set and not yet fired or cleared: the pool looks timers up at call time. */
const liveTimers = new Set<unknown>();
let timersSet = 0;
{
  const key = (handle: unknown) => typeof handle === "object" ? handle : Number(handle);
  const setT = globalThis.setTimeout;
  const clearT = globalThis.clearTimeout;
  const setI = globalThis.setInterval;
  const clearI = globalThis.clearInterval;
  g.setTimeout = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    timersSet++;
    const handle: unknown = setT(() => {
      liveTimers.delete(key(handle));
      fn(...args);
    }, ms);
    liveTimers.add(key(handle));
    return handle;
  };
  g.clearTimeout = (handle: unknown) => {
    liveTimers.delete(key(handle));
    clearT(handle as number);
  };
  g.setInterval = (fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    timersSet++;
    const handle: unknown = setI(fn, ms, ...args);
    liveTimers.add(key(handle));
    return handle;
  };
  g.clearInterval = (handle: unknown) => {
    liveTimers.delete(key(handle));
    clearI(handle as number);
  };
}

// ---------------------------------------------------------------- the run

interface Checkpoint {
  cycles: number;
  heapMB: number;
  timers: number;
  listeners: number;
  created: number;
  idle: number;
}

const failures: string[] = [];
function check(ok: boolean, what: string): void {
  if (!ok && !failures.includes(what)) failures.push(what);
}

const done = { release: 0, abort: 0, timeout: 0, destroy: 0, holds: 0 };
const events = new Map<string, number>();
let destroysBeforeClose = 0;
let created = 0;
const pool = new Pool({
  create: () => ({ id: ++created, uses: 0 }),
  destroy: () => {},
}, {
  max: MAX,
  maxLifetimeMs: 0, // no aging: every destroy is one the script asked for
  idleTimeoutMs: 0,
  onEvent: (e) => void events.set(e.type, (events.get(e.type) ?? 0) + 1),
});
const shared = countingSignal(); // an abort listener still attached after settling is a leak
let leftOnAbortSignals = 0;

/** Aborts and timeouts wait in the queue while every resource is held, so none is served. */
async function queuedFailures(kinds: Kind[]): Promise<void> {
  const holds: Lease<{ id: number; uses: number }>[] = [];
  for (let i = 0; i < MAX; i++) holds.push(await pool.acquire());
  done.holds += MAX;
  const waits: Promise<void>[] = [];
  const aborts: (() => void)[] = [];
  for (const kind of kinds) {
    if (kind === "abort") {
      const counted = countingSignal();
      const reason = new Error("soak abort");
      waits.push(
        pool.acquire({ signal: counted.signal }).then(
          () => check(false, "an aborted acquire was served"),
          (error) => {
            check(error === reason, "an aborted acquire rejects with signal.reason");
            leftOnAbortSignals += counted.listeners();
            done.abort++;
          },
        ),
      );
      aborts.push(() => counted.controller.abort(reason));
    } else {
      waits.push(
        pool.acquire({ timeoutMs: 1, signal: shared.signal }).then(
          () => check(false, "a timed-out acquire was served"),
          (error) => {
            check(
              error instanceof AcquireTimeoutError,
              "a timeout rejects with AcquireTimeoutError",
            );
            done.timeout++;
          },
        ),
      );
    }
  }
  await Promise.resolve();
  for (const abort of aborts) abort();
  await Promise.all(waits);
  for (const lease of holds) await lease.release();
}

/** Released and destroyed cycles, spread over more lanes than resources. */
async function borrows(kinds: Kind[]): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < kinds.length) {
      const kind = kinds[next++];
      const lease = await pool.acquire({ signal: shared.signal });
      lease.value.uses++;
      if (next % 3 === 0) await Promise.resolve(); // hold some across a tick
      if (kind === "destroy") {
        await lease.destroy();
        done.destroy++;
      } else {
        await lease.release();
        done.release++;
      }
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
}

function checkpoint(cycles: number, gcKind: string): Checkpoint {
  if (gcKind !== "none") collect();
  const s = pool.stats();
  check(s.waiting === 0 && s.active === 0, "nothing waits or is leased between rounds");
  check(shared.listeners() === 0, "no listener left on the shared signal");
  return {
    cycles,
    heapMB: Math.round(heapMB() * 100) / 100,
    timers: liveTimers.size,
    listeners: shared.listeners() + leftOnAbortSignals,
    created: s.created,
    idle: s.idle,
  };
}

const rand = random(SEED);
const gcKind = collect();
const started = performance.now();
const points: Checkpoint[] = [checkpoint(0, gcKind)];
const every = Math.max(CHUNK, Math.floor(CYCLES / CHECKPOINTS / CHUNK) * CHUNK);
for (let cycle = 0; cycle < CYCLES; cycle += CHUNK) {
  const size = Math.min(CHUNK, CYCLES - cycle);
  // Exactly the template's mix in every full round, shuffled (a partial last round: its head).
  const kinds = TEMPLATE.slice();
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
  }
  const round = kinds.slice(0, size);
  await queuedFailures(round.filter((k) => k === "abort" || k === "timeout"));
  await borrows(round.filter((k) => k === "release" || k === "destroy"));
  if ((cycle + size) % every === 0 || cycle + size === CYCLES) {
    points.push(checkpoint(cycle + size, gcKind));
  }
}
const seconds = (performance.now() - started) / 1000;
const before = pool.stats();
destroysBeforeClose = before.destroyed;
await pool.close();
const after = pool.stats();
const final = checkpoint(CYCLES, gcKind);

// ---------------------------------------------------------------- verdict

// Measured while the pool is still in use: after warm-up, against the last round's.
const warm = points[Math.min(1, points.length - 1)];
const last = points[points.length - 1];
const growthMB = Math.round((last.heapMB - warm.heapMB) * 100) / 100;
const acquired = done.release + done.destroy + done.holds;
check(done.release + done.abort + done.timeout + done.destroy === CYCLES, "every cycle ran");
check(before.acquired === acquired, "stats.acquired matches");
check(before.released === acquired, "stats.released matches (destroys included)");
check(before.timedOut === done.timeout, "stats.timedOut matches");
check(before.aborted === done.abort, "stats.aborted matches");
check(destroysBeforeClose === done.destroy, "stats.destroyed matches before close");
check(before.createErrors === 0 && before.exhausted === 0, "no create error, nothing refused");
check(after.destroyed === after.created && after.created === created, "close destroyed all");
check(after.total === 0 && after.waiting === 0, "nothing left after close");
for (
  const [type, key] of [["acquire", "acquired"], ["timeout", "timedOut"], ["abort", "aborted"]]
) {
  check(
    (events.get(type) ?? 0) === before[key as "acquired" | "timedOut" | "aborted"],
    `${type} events match`,
  );
}
check(leftOnAbortSignals === 0, "no listener left on aborted signals");
check(points.every((p) => p.listeners === 0), "no listener growth");
check(points.every((p) => p.timers <= 1), "at most the reaper's interval between rounds");
check(liveTimers.size === 0, "no timer left after close");
if (gcKind !== "none") check(growthMB < HEAP_LIMIT_MB, `heap flat (< ${HEAP_LIMIT_MB} MB)`);

const report = {
  soak: "edgepool",
  runtime,
  ok: failures.length === 0,
  failures,
  cycles: CYCLES,
  seed: SEED,
  seconds: Math.round(seconds * 100) / 100,
  cyclesPerSecond: Math.round(CYCLES / seconds),
  done,
  stats: {
    acquired: before.acquired,
    released: before.released,
    timedOut: before.timedOut,
    aborted: before.aborted,
    destroyed: destroysBeforeClose,
    created: after.created,
  },
  heap: {
    gc: gcKind,
    warmMB: warm.heapMB,
    lastMB: last.heapMB,
    afterCloseMB: final.heapMB,
    growthMB,
    limitMB: HEAP_LIMIT_MB,
  },
  timers: { set: timersSet, liveMax: Math.max(...points.map((p) => p.timers)), left: final.timers },
  listeners: { left: final.listeners },
  checkpoints: points,
};
console.log(JSON.stringify(report));
console.log(
  `\nedgepool soak on ${runtime}: ${CYCLES} cycles in ${report.seconds} s ` +
    `(${report.cyclesPerSecond}/s), GC: ${gcKind}`,
);
const rows = [["cycles", "heap MB", "timers", "listeners", "created", "idle"]];
for (const p of points) {
  rows.push([p.cycles, p.heapMB.toFixed(2), p.timers, p.listeners, p.created, p.idle].map(String));
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const row of rows) console.log(row.map((cell, i) => cell.padStart(widths[i])).join("  "));
console.log(
  `heap growth after warm-up: ${growthMB} MB (limit ${HEAP_LIMIT_MB} MB); ` +
    `released ${done.release}, aborted ${done.abort}, timed out ${done.timeout}, ` +
    `destroyed ${done.destroy}: ${report.ok ? "ok" : `FAILED: ${failures.join("; ")}`}`,
);
process.exitCode = report.ok ? 0 : 1;
