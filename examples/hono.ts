/**
 * A Hono app with a middleware that leases one connection per request: handlers after it read
 * `c.var.conn`, and the lease is released on every path, when the handler returns, throws, or
 * the client hangs up (`c.req.raw.signal` aborts a queued acquire at once, and the slow query
 * below).
 *
 * A full pool answers `503 Service Unavailable` with `Retry-After`; SIGTERM or SIGINT stops
 * accepting, lets requests in flight finish, then closes the pool. Runs on Deno
 * (`Deno.serve`), Bun (`Bun.serve`) and Node (`@hono/node-server`), chosen by feature
 * detection:
 *
 *   deno run -A examples/hono.ts · bun examples/hono.ts · node examples/hono.ts
 *
 * Routes: `/` (a greeting and the visit count; `?holdMs=N` keeps the connection N ms, as a
 * slow query), `/fail` (a handler that throws after using the connection), `/stats`.
 * Environment: `PORT` (8000), `POOL_MAX` (4), `POOL_MAX_WAITING` (16), `ACQUIRE_TIMEOUT_MS`
 * (2000).
 *
 * @module
 */
import type { Server, ServerResponse } from "node:http";
import process from "node:process";
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { AcquireTimeoutError, Pool, PoolExhaustedError } from "../mod.ts";
import { type Connection, openExampleDb, sleep } from "./_db.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const db = await openExampleDb();
const pool = new Pool(db.factory, {
  max: env("POOL_MAX", 4),
  maxWaiting: env("POOL_MAX_WAITING", 16),
  acquireTimeoutMs: env("ACQUIRE_TIMEOUT_MS", 2_000),
});

type Env = { Variables: { conn: Connection; connectionId: number } };

/**
 * Leases a connection for the rest of the request. `await using` releases it however `next()`
 * ends. A handler that streams its response must finish with the connection before it
 * returns: the lease ends with the middleware, not with the stream.
 */
const withConnection = createMiddleware<Env>(async (c, next) => {
  await using lease = await pool.acquire({ signal: c.req.raw.signal });
  c.set("conn", lease.value);
  c.set("connectionId", lease.info.id);
  await next();
});

const app = new Hono<Env>();

app.get("/stats", (c) => c.json(pool.stats()));

app.get("/", withConnection, async (c) => {
  const conn = c.var.conn;
  const { n } = conn.get<{ n: number }>("update visits set n = n + 1 returning n")!;
  const greeting = conn.get("select lang, text from greetings order by random() limit 1");
  const holdMs = Number(c.req.query("holdMs") ?? 0);
  if (holdMs > 0) await sleep(holdMs, c.req.raw.signal); // a slow query
  return c.json({ ...greeting, visits: n, connection: c.var.connectionId });
});

app.get("/fail", withConnection, (c) => {
  c.var.conn.get("select 1");
  throw new Error("the handler failed after using its connection");
});

app.onError((error, c) => {
  if (error instanceof PoolExhaustedError || error instanceof AcquireTimeoutError) {
    c.header("retry-after", "1");
    return c.text(`${error.message}\n`, 503);
  }
  // The client hung up: nobody reads this response.
  if (c.req.raw.signal.aborted) return new Response(null, { status: 499 });
  return c.text(`${error.message}\n`, 500);
});

// ------------------------------------------------ serving, on whichever runtime this is

interface Listening {
  url: string;
  close(): Promise<void>;
}

interface BunLike {
  serve(options: {
    port: number;
    hostname: string;
    fetch(req: Request): Response | Promise<Response>;
  }): { port: number; stop(closeActiveConnections?: boolean): Promise<void> };
}

async function listen(port: number, hostname: string): Promise<Listening> {
  const fetch = (req: Request) => app.fetch(req);
  const { Deno, Bun } = globalThis as { Deno?: typeof globalThis.Deno; Bun?: BunLike };
  if (typeof Deno?.serve === "function") {
    const server = Deno.serve({ port, hostname, onListen: () => {} }, fetch);
    return { url: `http://${hostname}:${server.addr.port}/`, close: () => server.shutdown() };
  }
  if (typeof Bun?.serve === "function") {
    const server = Bun.serve({ port, hostname, fetch });
    return { url: `http://${hostname}:${server.port}/`, close: () => server.stop() };
  }
  const { serve } = await import("@hono/node-server");
  let closing = false;
  return await new Promise((resolve) => {
    const server = serve({ fetch, port, hostname }, (info) => {
      resolve({
        url: `http://${hostname}:${info.port}/`,
        close: () => {
          closing = true;
          return new Promise((closed) => server.close(() => closed()));
        },
      });
    }) as Server;
    // server.close() waits for every socket to end, and a keep-alive client keeps its socket:
    // once shutting down, close each connection as soon as its response is sent.
    server.on("request", (_req, res: ServerResponse) => {
      res.once("finish", () => closing && server.closeIdleConnections());
    });
  });
}

const server = await listen(env("PORT", 8000), "127.0.0.1");
console.log(`hono: ${db.description}`);
console.log(`listening on ${server.url}`);

// In order: in-flight requests finish with their leases, then the pool closes.
async function shutdown(): Promise<void> {
  process.off("SIGTERM", shutdown).off("SIGINT", shutdown);
  console.log("shutting down: finishing requests in flight");
  await server.close();
  await pool.close();
  await db[Symbol.asyncDispose]();
  const { created, destroyed } = pool.stats();
  console.log(
    `pool closed: ${created - destroyed} resources leaked, ${db.openConnections} connections open`,
  );
}
process.on("SIGTERM", shutdown).on("SIGINT", shutdown);
