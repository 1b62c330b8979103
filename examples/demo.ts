/**
 * The demo: a web service on a real database, under load, with and without a pool, in about
 * twenty seconds.
 *
 * It picks its database by itself (`DATABASE_URL`, else a throwaway local PostgreSQL, else an
 * embedded SQLite: see `_demo_db.ts`), serves the handler of `deno_deploy.ts` on a loopback
 * port, and drives it with concurrent HTTP clients, some of which hang up early:
 *
 * 1. steady load through a pool of 8 connections;
 * 2. a traffic spike while the database slows down: the wait queue fills (503, queue full) and
 *    waits pass their deadline (503, timed out);
 * 3. the steady load again, with a new connection per request instead of the pool.
 *
 * On a terminal it redraws the pool's state as it goes; otherwise it prints a line a second.
 * It ends with a table, pool against new connection per request. The live dashboard
 * (`dashboard.ts`) runs alongside: open the printed URL. Runs on each runtime:
 *
 *   deno run -A examples/demo.ts · bun examples/demo.ts · node examples/demo.ts
 *
 * Environment: `DATABASE_URL`, `DEMO_DB` (`sqlite` or `postgres` to force one),
 * `DEMO_SECONDS` (the whole load, 15), `PORT` (the dashboard's; 0, the default, picks a free one).
 *
 * @module
 */
import process from "node:process";
import {
  AcquireTimeoutError,
  Pool,
  type PoolEvent,
  PoolExhaustedError,
  type PoolStats,
} from "../mod.ts";
import { createDashboard } from "./_dashboard.ts";
import { sleep } from "./_db.ts";
import { type DemoConnection, openDemoDb } from "./_demo_db.ts";
import { serve } from "./_serve.ts";

const MAX = 8; // connections in the pool
const CLIENTS = 24; // steady load: three clients per connection
const SPIKE_CLIENTS = 96;
const QUERY_MS = 5; // how long one request's query keeps the database busy
const SPIKE_QUERY_MS = 20; // a database under a spike is slower
const LEAVING = 0.05; // the share of requests whose client hangs up after 1–20 ms
const SECONDS = Number(process.env.DEMO_SECONDS ?? 15);

const tty = process.stdout.isTTY === true;
const say = (line: string) => console.log(line);

say("edgepool demo: a web service under load, with and without a pool\n");
const db = await openDemoDb(say);
say(`database   ${db.description}`);

const pool = new Pool(db.factory, {
  max: MAX,
  maxWaiting: 48, // past this, answer 503 at once rather than queue
  acquireTimeoutMs: 100, // a request that cannot get a connection soon gets a 503
});

// ------------------------------------------------------------------------- the service

const retryLater = (error: Error) =>
  new Response(`${error.message}\n`, { status: 503, headers: { "retry-after": "1" } });

/** The handler of deno_deploy.ts: a lease for the request's scope, 503 when the pool is full. */
async function pooled(req: Request, ms: number): Promise<Response> {
  try {
    await using conn = await pool.acquire({ signal: req.signal });
    await conn.value.query(ms);
    return new Response("ok\n");
  } catch (error) {
    if (error instanceof PoolExhaustedError || error instanceof AcquireTimeoutError) {
      return retryLater(error);
    }
    if (req.signal.aborted) return new Response(null, { status: 499 });
    throw error;
  }
}

/** The same without a pool: every request opens and closes its own connection. */
const direct = { opened: 0, closed: 0, open: 0, mostOpen: 0, aborted: 0 };
async function unpooled(req: Request, ms: number): Promise<Response> {
  let conn: DemoConnection;
  try {
    conn = await db.factory.create(req.signal);
  } catch (error) {
    if (!req.signal.aborted) throw error;
    direct.aborted++;
    return new Response(null, { status: 499 });
  }
  const info = { id: ++direct.opened, createdAt: Date.now(), lastUsedAt: Date.now(), uses: 1 };
  direct.mostOpen = Math.max(direct.mostOpen, ++direct.open);
  try {
    await conn.query(ms);
    return new Response("ok\n");
  } finally {
    await db.factory.destroy?.(conn, info);
    direct.open--;
    direct.closed++;
  }
}

const dashboard = createDashboard(pool, { title: `demo · ${db.description}` });
const server = await serve((req) => {
  const url = new URL(req.url);
  const ms = Number(url.searchParams.get("ms") ?? QUERY_MS);
  if (url.pathname === "/api/pooled") return pooled(req, ms);
  if (url.pathname === "/api/unpooled") return unpooled(req, ms);
  return dashboard.handle(req) ?? new Response("not found\n", { status: 404 });
}, { port: Number(process.env.PORT ?? 0) });
say(`dashboard  ${server.url}  (live while the demo runs; served by ${server.engine})\n`);

// ------------------------------------------------------------------------- the clients

/** What the clients of one phase saw. */
class Tally {
  ok = 0;
  busy = 0; // 503
  gone = 0; // hung up early
  failed = 0;
  latencies: number[] = [];
  started = performance.now();
  ended = 0;
  get seconds(): number {
    return ((this.ended || performance.now()) - this.started) / 1000;
  }
  quantile(q: number): number {
    const sorted = this.latencies.toSorted((a, b) => a - b);
    return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  }
}

async function client(url: string, tally: Tally, running: () => boolean): Promise<void> {
  while (running()) {
    const leaving = Math.random() < LEAVING;
    const started = performance.now();
    try {
      const signal = leaving ? AbortSignal.timeout(1 + Math.round(Math.random() * 19)) : undefined;
      const response = await fetch(url, { signal });
      await response.body?.cancel();
      if (response.status === 200) {
        tally.ok++;
        tally.latencies.push(performance.now() - started);
      } else if (response.status === 503) {
        tally.busy++;
        await sleep(100 + Math.random() * 200); // Retry-After, scaled down to the demo
      } else tally.failed++;
    } catch {
      if (leaving) tally.gone++;
      else tally.failed++;
    }
  }
}

interface Phase {
  title: string;
  path: string;
  clients: number;
  queryMs: number;
  seconds: number;
  tally: Tally;
  /** Pool stats when the phase started and ended. */
  before?: PoolStats;
  after?: PoolStats;
}

const phases: Phase[] = [
  { title: "steady load, pooled", path: "/api/pooled", clients: CLIENTS, queryMs: QUERY_MS },
  {
    title: "traffic spike, pooled",
    path: "/api/pooled",
    clients: SPIKE_CLIENTS,
    queryMs: SPIKE_QUERY_MS,
  },
  {
    title: "steady load, a new connection per request",
    path: "/api/unpooled",
    clients: CLIENTS,
    queryMs: QUERY_MS,
  },
].map((p, i) => ({ ...p, seconds: SECONDS * [0.4, 0.2, 0.4][i], tally: new Tally() }));

let interrupted = false;
const interrupt = () => interrupted = true;
process.on("SIGINT", interrupt).on("SIGTERM", interrupt);

// ------------------------------------------------------------------------- the live view

const notable: PoolEvent[] = [];
const eventCounts = new Map<string, number>();
let pooledOpen = 0;
let pooledMostOpen = 0;
const watching = (async () => {
  for await (const event of pool.events()) {
    eventCounts.set(event.type, (eventCounts.get(event.type) ?? 0) + 1);
    if (event.type === "create") pooledMostOpen = Math.max(pooledMostOpen, ++pooledOpen);
    if (event.type === "destroy") pooledOpen--;
    if (event.type === "acquire" || event.type === "release") continue;
    notable.push(event);
    if (notable.length > 5) notable.shift();
  }
})();

const bar = (n: number, of: number, width = 32) =>
  "█".repeat(Math.round((Math.min(n, of) / Math.max(of, 1)) * width)).padEnd(width, "·");
const ms = (x: number) => Number.isFinite(x) ? `${x.toFixed(1)} ms` : "–";

function describeEvent(e: PoolEvent): string {
  const time = new Date(e.time).toISOString().slice(11, 23);
  const detail = "id" in e ? `#${e.id}` : "";
  const more = e.type === "destroy"
    ? ` (${e.reason})`
    : e.type === "timeout" || e.type === "abort"
    ? ` after ${ms(e.waitedMs)}`
    : e.type === "exhausted"
    ? ` (${e.waiting} waiting)`
    : e.type === "create"
    ? ` in ${ms(e.tookMs)}`
    : "";
  return `${time}  ${e.type.padEnd(9)} ${detail}${more}`;
}

let lastLines = 0;
let rate = { at: 0, count: 0, perSecond: 0 };

/** Requests answered per second, over the last second or so. */
function requestsPerSecond(t: Tally): number {
  const now = performance.now();
  const answered = t.ok + t.busy;
  if (rate.at < t.started) rate = { at: t.started, count: 0, perSecond: 0 };
  if (now - rate.at >= 900) {
    rate = {
      at: now,
      count: answered,
      perSecond: ((answered - rate.count) * 1000) / (now - rate.at),
    };
  }
  return rate.perSecond;
}

/** One line, for a log rather than a terminal. */
function line(phase: Phase, s: PoolStats): string {
  const perSecond = requestsPerSecond(phase.tally).toFixed(0);
  if (phase.path !== "/api/pooled") {
    return `${perSecond} requests/s, ${direct.open} connections open, ${direct.opened} opened so far`;
  }
  return `${s.active + s.validating} in use, ${s.idle} idle, ${s.waiting} waiting · ` +
    `${perSecond} requests/s · wait p50 ${ms(s.waitMs.p50)}, p99 ${ms(s.waitMs.p99)} · ` +
    `503: ${s.exhausted} queue full, ${s.timedOut} timed out · ${s.aborted} gone while queued`;
}

/** The frame redrawn on a terminal. */
function view(phase: Phase, index: number, s: PoolStats): string[] {
  const t = phase.tally;
  const perSecond = requestsPerSecond(t).toFixed(0);
  const pooledPhase = phase.path === "/api/pooled";
  const lines = [
    `phase ${index + 1}/3  ${phase.title}: ${phase.clients} clients, ` +
    `${phase.seconds.toFixed(0)} s  [${bar(t.seconds, phase.seconds, 20)}]`,
  ];
  if (pooledPhase) {
    lines.push(
      `  in use   ${bar(s.active + s.validating, s.max)} ${s.active + s.validating} of ${s.max}`,
      `  idle     ${bar(s.idle, s.max)} ${s.idle}`,
      `  waiting  ${bar(s.waiting, 48)} ${s.waiting}`,
      `  ${perSecond} requests/s · wait p50 ${ms(s.waitMs.p50)}, ` +
        `p99 ${ms(s.waitMs.p99)} · hit rate ${(s.hitRate * 100).toFixed(0)} %`,
      `  503: ${s.exhausted} queue full, ${s.timedOut} timed out · ` +
        `${s.aborted} clients gone while queued`,
      "  latest events:",
      ...notable.map((e) => `    ${describeEvent(e)}`),
    );
  } else {
    lines.push(
      `  open     ${bar(direct.open, CLIENTS)} ${direct.open} (at most ${direct.mostOpen})`,
      `  ${perSecond} requests/s · ${direct.opened} connections opened so far`,
    );
  }
  return lines;
}

function draw(lines: string[]): void {
  const width = (process.stdout.columns ?? 100) - 1;
  const text = lines.map((l) => l.length > width ? l.slice(0, width) : l);
  // Up to the first line of the last frame, clear below, draw.
  const up = lastLines > 0 ? `\x1b[${lastLines}F\x1b[J` : "";
  process.stdout.write(`${up}${text.join("\n")}\n`);
  lastLines = text.length;
}

// ------------------------------------------------------------------------- the run

if (tty) {
  process.stdout.write("\x1b[?25l"); // hide the cursor while redrawing
  process.once("exit", () => process.stdout.write("\x1b[?25h")); // Ctrl-C included
}
try {
  for (const [index, phase] of phases.entries()) {
    if (interrupted) break;
    if (!tty) say(`phase ${index + 1}/3: ${phase.title}, ${phase.clients} clients`);
    const url = new URL(`${phase.path}?ms=${phase.queryMs}`, server.url).href;
    const deadline = performance.now() + phase.seconds * 1000;
    const running = () => !interrupted && performance.now() < deadline;
    phase.tally.started = performance.now();
    phase.before = pool.stats();
    lastLines = 0;
    const clients = Array.from({ length: phase.clients }, () => client(url, phase.tally, running));
    let second = 0;
    while (running()) {
      const left = deadline - performance.now();
      await sleep(Math.max(0, Math.min(tty ? 200 : 1_000, left)));
      if (tty) draw(view(phase, index, pool.stats()));
      else if (left >= 1_000) say(`  ${++second} s: ${line(phase, pool.stats())}`);
    }
    await Promise.all(clients);
    phase.tally.ended = performance.now();
    phase.after = pool.stats();
  }
} finally {
  if (tty) process.stdout.write("\x1b[?25h");
}

// ------------------------------------------------------------------------- the summary

dashboard.close();
await server.close();
await pool.close();
await watching; // the events of the close
await db[Symbol.asyncDispose]();
process.off("SIGINT", interrupt).off("SIGTERM", interrupt);

const [steady, spike, perRequest] = phases.map((p) => p.tally);
const s = pool.stats();
const row = (label: string, a: string | number, b: string | number) =>
  say(`  ${label.padEnd(28)} ${String(a).padStart(16)} ${String(b).padStart(28)}`);
const rps = (t: Tally) => (t.ok / t.seconds).toFixed(0);
const latency = (t: Tally) => `${t.quantile(0.5).toFixed(1)} / ${t.quantile(0.99).toFixed(1)}`;

type Counter = "created" | "exhausted" | "timedOut" | "aborted";
const during = (phase: Phase, key: Counter) =>
  (phase.after?.[key] ?? 0) - (phase.before?.[key] ?? 0);
const gone = phases.reduce((sum, p) => sum + p.tally.gone, 0);
const failed = phases.reduce((sum, p) => sum + p.tally.failed, 0);

say(`\nsummary${interrupted ? " (interrupted)" : ""}: the steady load, ${CLIENTS} clients`);
row("", `pool (max ${MAX})`, "new connection per request");
row("requests answered", steady.ok, perRequest.ok);
row("requests per second", rps(steady), rps(perRequest));
row("latency p50 / p99 (ms)", latency(steady), latency(perRequest));
row("connections opened", during(phases[0], "created"), direct.opened);
row("connections open at most", pooledMostOpen, direct.mostOpen);

say(`\nthe spike: ${SPIKE_CLIENTS} clients on the pool while the database slows down`);
say(`  answered ${spike.ok}, latency p50 / p99 ${latency(spike)} ms`);
say(
  `  503 Service Unavailable: ${during(phases[1], "exhausted")} wait queue full, ` +
    `${during(phases[1], "timedOut")} timed out`,
);

say(
  `\nclients that hung up early: ${gone}; ${s.aborted} of them while queued for a connection ` +
    "(their acquires left the queue at once)",
);
if (failed > 0) say(`requests that failed: ${failed}`);
say(`pool events: ${[...eventCounts].map(([type, n]) => `${type} ${n}`).join(", ")}`);
say(
  `connections still open: ${direct.opened - direct.closed} (without the pool), ` +
    `${s.created - s.destroyed} (pool)`,
);
say(`resources leaked: ${s.created - s.destroyed}`);
