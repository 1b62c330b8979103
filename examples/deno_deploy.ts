/**
 * A `Deno.serve` handler in the Deno Deploy style: one pool at module scope, shared by every
 * request the isolate serves; each request leases a connection for its own scope.
 *
 * - `await using conn = await pool.acquire({ signal: req.signal })`: the lease is released
 *   when the handler returns or throws, and a client that hangs up while queued leaves the
 *   queue at once (its acquire rejects with `req.signal.reason`).
 * - A full pool answers `503 Service Unavailable` with `Retry-After`, both when the wait queue
 *   is full (`PoolExhaustedError`) and when the wait passed its deadline
 *   (`AcquireTimeoutError`), instead of letting requests pile up.
 * - SIGTERM or SIGINT shuts down gracefully: stop accepting, let requests in flight finish,
 *   then close the pool.
 *
 * Run: `deno run -A examples/deno_deploy.ts`, then `curl http://127.0.0.1:8000/`.
 * `?holdMs=N` keeps the connection N ms (a slow query); `/stats` shows the pool. Environment:
 * `PORT` (8000), `POOL_MAX` (4), `POOL_MAX_WAITING` (16), `ACQUIRE_TIMEOUT_MS` (2000).
 *
 * @module
 */
import { AcquireTimeoutError, Pool, PoolExhaustedError } from "../mod.ts";
import { openExampleDb, sleep } from "./_db.ts";

const env = (name: string, fallback: number) => Number(Deno.env.get(name) ?? fallback);

const db = await openExampleDb();
const pool = new Pool(db.factory, {
  max: env("POOL_MAX", 4),
  maxWaiting: env("POOL_MAX_WAITING", 16),
  acquireTimeoutMs: env("ACQUIRE_TIMEOUT_MS", 2_000),
});

async function handler(req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname === "/stats") return Response.json(pool.stats());
  if (url.pathname !== "/") return new Response("not found\n", { status: 404 });
  try {
    await using conn = await pool.acquire({ signal: req.signal });
    const { n } = conn.value.get<{ n: number }>("update visits set n = n + 1 returning n")!;
    const greeting = conn.value.get("select lang, text from greetings order by random() limit 1");
    const holdMs = Number(url.searchParams.get("holdMs") ?? 0);
    if (holdMs > 0) await sleep(holdMs, req.signal); // a slow query
    return Response.json({ ...greeting, visits: n, connection: conn.info.id });
  } catch (error) {
    if (error instanceof PoolExhaustedError || error instanceof AcquireTimeoutError) {
      return new Response(`${error.message}\n`, {
        status: 503,
        headers: { "retry-after": "1" },
      });
    }
    // The client hung up: nobody reads this response.
    if (req.signal.aborted) return new Response(null, { status: 499 });
    throw error;
  }
}

const server = Deno.serve({
  port: env("PORT", 8000),
  hostname: "127.0.0.1", // Deno Deploy ignores port and hostname
  onListen: ({ hostname, port }) => {
    console.log(`deno_deploy: ${db.description}`);
    console.log(`listening on http://${hostname}:${port}/`);
  },
}, handler);

// Deno Deploy ends an isolate without a signal; locally, and on servers, SIGTERM and Ctrl-C
// shut down in order: in-flight requests finish with their leases, then the pool closes.
const signals = ["SIGTERM", "SIGINT"] as const;
async function shutdown(): Promise<void> {
  for (const signal of signals) Deno.removeSignalListener(signal, shutdown);
  console.log("shutting down: finishing requests in flight");
  await server.shutdown();
  await pool.close();
  await db[Symbol.asyncDispose]();
  const { created, destroyed } = pool.stats();
  console.log(
    `pool closed: ${created - destroyed} resources leaked, ${db.openConnections} connections open`,
  );
}
for (const signal of signals) Deno.addSignalListener(signal, shutdown);
