/**
 * A live view of one pool in the browser: a self-contained page (`_dashboard.html`: inline
 * script and an SVG chart, nothing fetched from elsewhere) and a Server-Sent Events stream that
 * feeds it, made of `pool.watch()` (a stats snapshot every `intervalMs`, with `pool.health()`)
 * and `pool.events()` (batched, so a busy pool does not flood the page). A page opened late
 * first gets the last 30 seconds.
 *
 * Runtime-neutral: it only makes `Response`s; `dashboard.ts` and the demo serve them.
 *
 * @example
 * ```ts ignore
 * const dashboard = createDashboard(pool, { title: "my pool" });
 * const server = await serve((req) => dashboard.handle(req) ?? new Response(null, { status: 404 }));
 * ```
 *
 * @module
 */
import { readFileSync } from "node:fs";
import type { Pool, PoolEvent } from "../mod.ts";

/** Options of {@linkcode createDashboard}. */
export interface DashboardOptions {
  /** Shown in the page's header, e.g. which database the pool serves. @default {""} */
  title?: string;
  /** Time between two stats snapshots on the stream. @default {250} */
  intervalMs?: number;
  /** Time between two batches of events on the stream. @default {200} */
  eventsIntervalMs?: number;
  /** Events sent in full per batch; the rest are only counted. @default {20} */
  eventsPerBatch?: number;
  /** How much stats history a page gets when it opens. @default {30_000} */
  historyMs?: number;
}

/** The dashboard's routes, and a way to end its streams. */
export interface Dashboard {
  /** Answers `GET /` (the page) and `GET /events` (the stream); `undefined` for other paths. */
  handle(request: Request): Response | undefined;
  /** Ends every open stream, so that a server shutdown does not wait on them. */
  close(): void;
}

// Messages queued for one page before it counts as gone.
const MAX_QUEUED = 512;

const PAGE = readFileSync(new URL("./_dashboard.html", import.meta.url), "utf8");

/** A pool event as plain JSON: errors and abort reasons become their message. */
function plain(event: PoolEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { ...event };
  for (const key of ["error", "reason"]) {
    const value = out[key];
    if (value !== undefined) out[key] = value instanceof Error ? value.message : String(value);
  }
  delete out.stack; // leak events carry the acquirer's stack: too long for the log
  return out;
}

/** Makes the dashboard of `pool`. It watches the pool from now on, until `close()` or the pool
 * closes, and keeps the last `historyMs` for pages opened later. */
export function createDashboard<T>(pool: Pool<T>, options: DashboardOptions = {}): Dashboard {
  const intervalMs = options.intervalMs ?? 250;
  const eventsIntervalMs = options.eventsIntervalMs ?? 200;
  const eventsPerBatch = options.eventsPerBatch ?? 20;
  const historyMs = options.historyMs ?? 30_000;
  const closing = new AbortController();
  const encoder = new TextEncoder();
  const message = (event: string, data: unknown) =>
    encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

  // One watcher and one event subscription for all the pages, each message encoded once.
  const pages = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const history: Uint8Array[] = []; // the recent "stats" messages
  let recentEvents: Uint8Array | undefined; // the last "events" message
  const end = (page: ReadableStreamDefaultController<Uint8Array>) => {
    pages.delete(page);
    try {
      page.close();
    } catch {
      // the client cancelled it already
    }
  };
  const broadcast = (chunk: Uint8Array) => {
    for (const page of pages) {
      try {
        // A page that does not keep up is cut off; its EventSource reconnects and catches up.
        if ((page.desiredSize ?? 0) < -MAX_QUEUED) end(page);
        else page.enqueue(chunk);
      } catch {
        end(page);
      }
    }
  };

  const watching = (async () => {
    for await (const stats of pool.watch({ intervalMs, signal: closing.signal })) {
      const chunk = message("stats", { time: Date.now(), stats, health: pool.health() });
      history.push(chunk);
      if (history.length > historyMs / intervalMs) history.shift();
      broadcast(chunk);
    }
  })();

  // Events arrive by the thousand under load: collect them, and every eventsIntervalMs send
  // the counts by type and the latest few in full.
  let batch: PoolEvent[] = [];
  let counts: Record<string, number> = {};
  const flush = setInterval(() => {
    if (batch.length === 0) return;
    const events = batch.slice(-eventsPerBatch).map(plain);
    const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
    const chunk = message("events", { events, counts, skipped: total - events.length });
    recentEvents = message("events", { events, counts: {}, skipped: 0 });
    batch = [];
    counts = {};
    broadcast(chunk);
  }, eventsIntervalMs);
  const listening = (async () => {
    for await (const event of pool.events({ signal: closing.signal, bufferSize: 4_096 })) {
      batch.push(event);
      if (batch.length > eventsPerBatch * 4) batch.splice(0, batch.length - eventsPerBatch);
      counts[event.type] = (counts[event.type] ?? 0) + 1;
    }
  })();

  // Both end when the pool closes or the dashboard does: then every page's stream ends too.
  void Promise.allSettled([watching, listening]).then(() => {
    clearInterval(flush);
    closing.abort();
    for (const page of pages) end(page);
  });

  function stream(request: Request): ReadableStream<Uint8Array> {
    let self: ReadableStreamDefaultController<Uint8Array> | undefined;
    const leave = () => {
      if (self) pages.delete(self);
      request.signal.removeEventListener("abort", leave);
    };
    return new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(message("hello", { title: options.title ?? "" }));
        for (const chunk of history) controller.enqueue(chunk);
        if (recentEvents) controller.enqueue(recentEvents);
        if (closing.signal.aborted) return controller.close();
        self = controller;
        pages.add(controller);
        request.signal.addEventListener("abort", leave, { once: true });
      },
      cancel: leave,
    });
  }

  return {
    handle(request) {
      const { pathname } = new URL(request.url);
      if (request.method !== "GET") return undefined;
      if (pathname === "/") {
        return new Response(PAGE, {
          headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
        });
      }
      if (pathname === "/events") {
        return new Response(stream(request), {
          headers: {
            "content-type": "text/event-stream",
            "cache-control": "no-store",
            "x-accel-buffering": "no",
          },
        });
      }
      return undefined;
    },
    close() {
      closing.abort();
    },
  };
}
