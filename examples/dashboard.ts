/**
 * A live dashboard of a pool under load: open the printed URL and watch connections go from
 * idle to in use, waiters queue at the peaks, idle connections retire in the troughs, and the
 * event stream scroll by. The page is self-contained (inline script, an SVG chart) and fed by
 * `pool.watch()` and `pool.events()` over Server-Sent Events.
 *
 * The load comes from simulated clients in this process, their number rising and falling in
 * waves; some give up while queued (aborted acquires) and some wait too long (timeouts). Bring
 * your own load too: `/work?ms=N` leases a connection for N ms.
 *
 *   deno run -A examples/dashboard.ts · bun examples/dashboard.ts · node examples/dashboard.ts
 *
 * Environment: `PORT` (8000; 0 picks a free port), `LOAD` (`off` for no simulated clients),
 * `POOL_MAX` (8). Ctrl-C stops the load, closes the pool and exits.
 *
 * @module
 */
import process from "node:process";
import { AcquireTimeoutError, Pool, PoolExhaustedError } from "../mod.ts";
import { createDashboard } from "./_dashboard.ts";
import { openExampleDb, sleep } from "./_db.ts";
import { serve } from "./_serve.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const MAX = env("POOL_MAX", 8);
const LOAD = process.env.LOAD !== "off";
const WAVE_MS = 20_000; // one rise and fall of the load

// Opening a connection costs 40 ms here, as a server database would over a network.
const db = await openExampleDb({ connectDelayMs: 40 });
const pool = new Pool(db.factory, {
  min: 1,
  max: MAX,
  maxWaiting: MAX * 3,
  acquireTimeoutMs: 1_000,
  idleTimeoutMs: 3_000, // so that the troughs show connections retiring
  maxLifetimeMs: 30_000,
  reapIntervalMs: 250,
});

const dashboard = createDashboard(pool, {
  title: `${db.description}, max ${MAX}${LOAD ? ", simulated load" : ""}`,
});

async function work(request: Request): Promise<Response> {
  const ms = Math.min(Number(new URL(request.url).searchParams.get("ms") ?? 50), 10_000);
  try {
    await using conn = await pool.acquire({ signal: request.signal });
    conn.value.run("update visits set n = n + 1");
    await sleep(ms, request.signal); // a slow query
    return Response.json({ connection: conn.info.id, heldMs: ms });
  } catch (error) {
    if (error instanceof PoolExhaustedError || error instanceof AcquireTimeoutError) {
      return new Response(`${error.message}\n`, { status: 503, headers: { "retry-after": "1" } });
    }
    if (request.signal.aborted) return new Response(null, { status: 499 });
    throw error;
  }
}

const server = await serve((request) => {
  const { pathname } = new URL(request.url);
  if (pathname === "/work") return work(request);
  if (pathname === "/stats") return Response.json(pool.stats());
  return dashboard.handle(request) ?? new Response("not found\n", { status: 404 });
}, { port: env("PORT", 8000) });
console.log(`dashboard: ${db.description}, served by ${server.engine}`);
console.log(`listening on ${server.url}`);

// ------------------------------------------------------------------ simulated load

/** One client: query, hold the connection a while, think, again, until stopped. */
async function client(stop: AbortSignal): Promise<void> {
  while (!stop.aborted) {
    // One in twelve is impatient: it gives up if not served within 50–250 ms.
    const signal = Math.random() < 1 / 12
      ? AbortSignal.any([stop, AbortSignal.timeout(Math.round(50 + Math.random() * 200))])
      : stop;
    try {
      await pool.use(async (conn) => {
        conn.run("update visits set n = n + 1");
        await sleep(20 + Math.random() * 120, stop); // a query of 20–140 ms
      }, { signal });
    } catch {
      // Timeouts, aborts and refusals are what the dashboard is here to show.
    }
    await sleep(Math.random() * 40); // the client thinks
  }
}

const clients: AbortController[] = [];
const started = Date.now();
function steer(): void {
  // From 1 client up to twice the pool's size and back, every WAVE_MS.
  const phase = ((Date.now() - started) % WAVE_MS) / WAVE_MS;
  const target = Math.round(1 + (2 * MAX - 1) * (0.5 - 0.5 * Math.cos(2 * Math.PI * phase)));
  while (clients.length < target) {
    const controller = new AbortController();
    clients.push(controller);
    void client(controller.signal);
  }
  while (clients.length > target) clients.pop()!.abort();
}
const steering = LOAD ? setInterval(steer, 250) : undefined;
if (LOAD) steer();

// ------------------------------------------------------------------ shutdown

async function shutdown(): Promise<void> {
  process.off("SIGTERM", shutdown).off("SIGINT", shutdown);
  console.log("shutting down: stopping the load and the streams");
  clearInterval(steering);
  for (const controller of clients.splice(0)) controller.abort();
  dashboard.close();
  await server.close();
  await pool.close();
  await db[Symbol.asyncDispose]();
  const s = pool.stats();
  console.log(
    `pool closed: ${s.acquired} acquires, ${s.timedOut} timed out, ${s.aborted} aborted, ` +
      `${s.exhausted} refused; ${s.created - s.destroyed} resources leaked, ` +
      `${db.openConnections} connections open`,
  );
}
process.on("SIGTERM", shutdown).on("SIGINT", shutdown);
