/**
 * A `Bun.serve` handler: one pool at module scope, a lease per request.
 *
 * - `await using conn = await pool.acquire({ signal: req.signal })`: the lease is released
 *   when the handler returns or throws, and a client that hangs up while queued leaves the
 *   queue at once (Bun aborts `req.signal` when the client disconnects).
 * - A full pool answers `503 Service Unavailable` with `Retry-After` (`PoolExhaustedError`
 *   when the wait queue is full, `AcquireTimeoutError` when the wait passed its deadline).
 * - SIGTERM or SIGINT shuts down gracefully: stop accepting, let requests in flight finish,
 *   then close the pool.
 *
 * Run: `bun examples/bun_serve.ts`, then `curl http://127.0.0.1:8000/`. `?holdMs=N` keeps the
 * connection N ms (a slow query); `/stats` shows the pool. Environment: `PORT` (8000),
 * `POOL_MAX` (4), `POOL_MAX_WAITING` (16), `ACQUIRE_TIMEOUT_MS` (2000).
 *
 * @module
 */
import process from "node:process";
import { AcquireTimeoutError, Pool, PoolExhaustedError } from "../mod.ts";
import { openExampleDb, sleep } from "./_db.ts";

// The little of Bun's API used here, so that the file type-checks without Bun's types.
interface BunServer {
  readonly hostname: string;
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void>;
}
declare const Bun: {
  serve(options: {
    port: number;
    hostname: string;
    fetch(req: Request): Response | Promise<Response>;
  }): BunServer;
};

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const db = await openExampleDb();
const pool = new Pool(db.factory, {
  max: env("POOL_MAX", 4),
  maxWaiting: env("POOL_MAX_WAITING", 16),
  acquireTimeoutMs: env("ACQUIRE_TIMEOUT_MS", 2_000),
});

async function fetch(req: Request): Promise<Response> {
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

const server = Bun.serve({ port: env("PORT", 8000), hostname: "127.0.0.1", fetch });
console.log(`bun_serve: ${db.description}`);
console.log(`listening on http://${server.hostname}:${server.port}/`);

// In order: in-flight requests finish with their leases, then the pool closes.
async function shutdown(): Promise<void> {
  process.off("SIGTERM", shutdown).off("SIGINT", shutdown);
  console.log("shutting down: finishing requests in flight");
  await server.stop();
  await pool.close();
  await db[Symbol.asyncDispose]();
  const { created, destroyed } = pool.stats();
  console.log(
    `pool closed: ${created - destroyed} resources leaked, ${db.openConnections} connections open`,
  );
}
process.on("SIGTERM", shutdown).on("SIGINT", shutdown);
