/**
 * A `node:http` server: one pool at module scope, a lease per request. Runs on Node 24 (and
 * on Deno and Bun, which implement `node:http`).
 *
 * - `node:http` has no `request.signal`, so the handler makes one: the request's `close`
 *   event aborts it when the response was not sent yet, i.e. when the client hung up. A client
 *   that hangs up while queued leaves the queue at once.
 * - `await using conn = await pool.acquire({ signal })`: the lease is released when the handler
 *   returns or throws.
 * - A full pool answers `503 Service Unavailable` with `Retry-After` (`PoolExhaustedError`
 *   when the wait queue is full, `AcquireTimeoutError` when the wait passed its deadline).
 * - SIGTERM or SIGINT shuts down gracefully: stop accepting, let requests in flight finish,
 *   then close the pool.
 *
 * Run: `node examples/node_http.ts`, then `curl http://127.0.0.1:8000/`. `?holdMs=N` keeps the
 * connection N ms (a slow query); `/stats` shows the pool. Environment: `PORT` (8000),
 * `POOL_MAX` (4), `POOL_MAX_WAITING` (16), `ACQUIRE_TIMEOUT_MS` (2000).
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { AcquireTimeoutError, Pool, PoolExhaustedError } from "../mod.ts";
import { openExampleDb, sleep } from "./_db.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const db = await openExampleDb();
const pool = new Pool(db.factory, {
  max: env("POOL_MAX", 4),
  maxWaiting: env("POOL_MAX_WAITING", 16),
  acquireTimeoutMs: env("ACQUIRE_TIMEOUT_MS", 2_000),
});

function send(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const type = typeof body === "string" ? "text/plain; charset=utf-8" : "application/json";
  res.writeHead(status, { "content-type": type, ...headers }).end(text);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  // `close` fires when the exchange ends either way; before the response ended, the client
  // went away.
  const controller = new AbortController();
  req.once("close", () => {
    if (!res.writableEnded) controller.abort(new Error("client disconnected"));
  });
  const { signal } = controller;

  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname === "/stats") return send(res, 200, pool.stats());
  if (url.pathname !== "/") return send(res, 404, "not found\n");
  try {
    await using conn = await pool.acquire({ signal });
    const { n } = conn.value.get<{ n: number }>("update visits set n = n + 1 returning n")!;
    const greeting = conn.value.get("select lang, text from greetings order by random() limit 1");
    const holdMs = Number(url.searchParams.get("holdMs") ?? 0);
    if (holdMs > 0) await sleep(holdMs, signal); // a slow query
    send(res, 200, { ...greeting, visits: n, connection: conn.info.id });
  } catch (error) {
    if (error instanceof PoolExhaustedError || error instanceof AcquireTimeoutError) {
      return send(res, 503, `${error.message}\n`, { "retry-after": "1" });
    }
    if (signal.aborted) return; // the client hung up: there is nobody to answer
    throw error;
  }
}

let closing = false;
const server = createServer((req, res) => {
  // server.close() waits for every socket to end, and a keep-alive client keeps its socket: once
  // shutting down, close each connection as soon as its response is sent.
  res.once("finish", () => closing && server.closeIdleConnections());
  handle(req, res).catch((error) => {
    console.error(error);
    if (!res.headersSent) send(res, 500, "internal error\n");
    else res.destroy();
  });
});

server.listen(env("PORT", 8000), "127.0.0.1", () => {
  const { address, port } = server.address() as AddressInfo;
  console.log(`node_http: ${db.description}`);
  console.log(`listening on http://${address}:${port}/`);
});

// In order: in-flight requests finish with their leases, then the pool closes.
async function shutdown(): Promise<void> {
  process.off("SIGTERM", shutdown).off("SIGINT", shutdown);
  console.log("shutting down: finishing requests in flight");
  closing = true;
  await new Promise((resolve) => server.close(resolve)); // also closes idle connections
  await pool.close();
  await db[Symbol.asyncDispose]();
  const { created, destroyed } = pool.stats();
  console.log(
    `pool closed: ${created - destroyed} resources leaked, ${db.openConnections} connections open`,
  );
}
process.on("SIGTERM", shutdown).on("SIGINT", shutdown);
