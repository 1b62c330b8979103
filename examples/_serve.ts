/**
 * A tiny runtime-neutral HTTP server for the examples that run everywhere (the dashboard, the
 * demo): a fetch-style handler `(Request) => Response` served by `Deno.serve`, `Bun.serve` or
 * `node:http`, whichever the runtime has (feature detection, not runtime sniffing).
 *
 * On `node:http` the request gets a real `AbortSignal` (aborted when the client hangs up) and
 * the response body is streamed with back-pressure, so Server-Sent Events work the same on all
 * three runtimes.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./_serve.ts";
 *
 * const server = await serve(() => new Response("hello\n"), { port: 8000 });
 * console.log(`listening on ${server.url}`);
 * await server.close();
 * ```
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/** A fetch-style request handler. */
export type Handler = (request: Request) => Response | Promise<Response>;

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  /** The port; `0` picks a free one. @default {0} */
  port?: number;
  /** The address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
}

/** A listening server. */
export interface HttpServer {
  /** `http://HOST:PORT/` */
  readonly url: string;
  /** Which server runs it: `Deno.serve`, `Bun.serve` or `node:http`. */
  readonly engine: string;
  /** Stops accepting; resolves once the requests in flight are answered. */
  close(): Promise<void>;
}

// The little of Bun's API used here, so that the file type-checks without Bun's types.
interface BunLike {
  serve(options: {
    port: number;
    hostname: string;
    idleTimeout?: number;
    fetch(request: Request): Response | Promise<Response>;
  }): { port: number; stop(closeActiveConnections?: boolean): Promise<void> };
}

/** Serves `handler` on the first server API the runtime offers. */
export async function serve(handler: Handler, options: ServeOptions = {}): Promise<HttpServer> {
  const port = options.port ?? 0;
  const hostname = options.hostname ?? "127.0.0.1";
  const fetch = (request: Request) => handler(request);
  const { Deno, Bun } = globalThis as { Deno?: typeof globalThis.Deno; Bun?: BunLike };
  if (typeof Deno?.serve === "function") {
    const server = Deno.serve({ port, hostname, onListen: () => {} }, fetch);
    return {
      url: `http://${hostname}:${server.addr.port}/`,
      engine: "Deno.serve",
      close: () => server.shutdown(),
    };
  }
  if (typeof Bun?.serve === "function") {
    // idleTimeout 0: an event stream may stay quiet longer than Bun's default 10 s.
    const server = Bun.serve({ port, hostname, idleTimeout: 0, fetch });
    return {
      url: `http://${hostname}:${server.port}/`,
      engine: "Bun.serve",
      close: () => server.stop(),
    };
  }
  return await serveNode(fetch, port, hostname);
}

async function serveNode(handler: Handler, port: number, hostname: string): Promise<HttpServer> {
  const { createServer } = await import("node:http");
  const { Readable } = await import("node:stream");
  let closing = false;

  async function respond(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // `close` comes when the exchange ends either way; before the response ended, the client
    // went away.
    const controller = new AbortController();
    res.once("close", () => {
      if (!res.writableEnded) controller.abort(new Error("client disconnected"));
    });
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
        headers.append(name, v);
      }
    }
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const request = new Request(new URL(req.url ?? "/", `http://${req.headers.host ?? hostname}`), {
      method: req.method,
      headers,
      body: hasBody ? Readable.toWeb(req) as ReadableStream<Uint8Array> : undefined,
      signal: controller.signal,
      // Required by the fetch spec for a streamed request body.
      ...(hasBody ? { duplex: "half" } : {}),
    } as RequestInit);

    let response: Response;
    try {
      response = await handler(request);
    } catch (error) {
      console.error(error);
      response = new Response("internal error\n", { status: 500 });
    }
    if (controller.signal.aborted) {
      await response.body?.cancel();
      return;
    }
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (!response.body) {
      res.end();
      return;
    }
    res.flushHeaders(); // an event stream must reach the client before its first event
    const reader = response.body.getReader();
    const cancel = () => void reader.cancel(controller.signal.reason).catch(() => {});
    controller.signal.addEventListener("abort", cancel, { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!res.write(value)) {
          await new Promise<void>((resolve) => {
            const go = () => {
              res.off("drain", go).off("close", go);
              resolve();
            };
            res.on("drain", go).on("close", go);
          });
        }
      }
      res.end();
    } catch {
      res.destroy(); // the stream failed, or the client left: end the connection
    } finally {
      controller.signal.removeEventListener("abort", cancel);
    }
  }

  // Requests being answered: once closing and none is left, every connection can go.
  let inFlight = 0;
  const server = createServer(async (req, res) => {
    inFlight++;
    try {
      await respond(req, res);
    } finally {
      if (--inFlight === 0 && closing) server.closeAllConnections();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const actualPort = typeof address === "object" && address ? address.port : port;
  return {
    url: `http://${hostname}:${actualPort}/`,
    engine: "node:http",
    close: () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (inFlight === 0) server.closeAllConnections();
      return closed;
    },
  };
}
