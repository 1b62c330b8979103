/**
 * A recipe: pooling network clients. HTTP needs no pool of yours: `fetch` (undici on Node, and
 * Deno's and Bun's own) and `node:http`'s keep-alive `Agent` already keep connections per origin.
 * A protocol without such a client does: here, `node:net` sockets to a line-based TCP server
 * (one request line, one reply line, like memcached's text protocol or SMTP). Opening one costs
 * a round trip or a TLS handshake; a pool keeps a few open and hands each to one caller at a
 * time, which is exactly what a request/reply protocol over one socket needs.
 *
 * - `create(signal)` connects, and gives up (destroying the socket) when `signal` aborts.
 * - `validate` sends `PING` and expects `PONG`, bounded by the pool's `validateTimeoutMs`.
 * - `isAlive` is false once the server closed the socket, or once a reply went missing (a
 *   request aborted or timed out: its late reply would be read by the next request).
 * - `reset` refuses a connection with a reply still outstanding, so the pool destroys it.
 * - `destroy` half-closes (`end()`), then destroys the socket after `closeTimeoutMs`.
 * - `isBroken` is true when the connection died, so `pool.use()` drops it.
 *
 * `tests/recipes_test.ts` runs it against a loopback server. This program starts a tiny line
 * server of its own and shows reuse, the cap on connections and recovery after the server
 * dropped them all:
 *
 *   deno run -A examples/http_clients.ts · bun examples/http_clients.ts · node examples/http_clients.ts
 *
 * @module
 */
import { connect, createServer, type Socket } from "node:net";
import { type Factory, Pool } from "../mod.ts";

/** Options of {@linkcode lineClientFactory}. */
export interface LineClientOptions {
  /** The server's host. @default {"127.0.0.1"} */
  host?: string;
  /** How long `destroy()` waits for the server to acknowledge the close. @default {1_000} */
  closeTimeoutMs?: number;
}

/** Options of one {@linkcode LineConnection.request}. */
export interface RequestOptions {
  /** Aborting it rejects the request with `signal.reason` (and retires the connection). */
  signal?: AbortSignal;
}

const SOCKET_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ERR_CLOSED"]);

/** Whether `error` means the connection is gone rather than that a request failed. */
export function isSocketError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && SOCKET_CODES.has(code);
}

/** One TCP connection speaking a line protocol: one request at a time. */
export class LineConnection {
  /** The socket, for what this class lacks (e.g. `remotePort`). */
  readonly socket: Socket;
  #buffer = "";
  #waiting: { resolve(line: string): void; reject(error: unknown): void } | undefined;
  #closed = false;
  #desynced = false;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.setNoDelay(true);
    socket.on("data", (chunk: string) => this.#receive(chunk));
    socket.on("error", (error) => this.#close(error));
    socket.on("close", () => this.#close());
  }

  /** True while the connection can serve a request: open, and no reply went missing. */
  get alive(): boolean {
    return !this.#closed && !this.#desynced;
  }

  /** True while a reply is outstanding. */
  get busy(): boolean {
    return this.#waiting !== undefined;
  }

  /** Sends one line and resolves with the reply line. */
  request(line: string, options: RequestOptions = {}): Promise<string> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.alive) return Promise.reject(closedError("the connection is closed"));
    if (this.busy) return Promise.reject(new Error("a request is already in flight"));
    return new Promise<string>((resolve, reject) => {
      const onAbort = () => {
        // The reply may still come; nobody could tell it from the next request's.
        this.#desynced = true;
        this.#waiting = undefined;
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting = {
        resolve: (reply) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(reply);
        },
        reject: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      this.socket.write(`${line}\n`);
    });
  }

  /** Half-closes, then destroys the socket if the server has not closed it within `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    if (this.socket.destroyed) return;
    const closed = new Promise<void>((resolve) => this.socket.once("close", () => resolve()));
    this.socket.end();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) =>
      timer = setTimeout(() => resolve("late"), timeoutMs)
    );
    if ((await Promise.race([closed, late])) === "late") this.socket.destroy();
    clearTimeout(timer);
  }

  #receive(chunk: string): void {
    this.#buffer += chunk;
    let end: number;
    while ((end = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, end).replace(/\r$/, "");
      this.#buffer = this.#buffer.slice(end + 1);
      const waiting = this.#waiting;
      this.#waiting = undefined;
      if (waiting) waiting.resolve(line);
      else this.#desynced = true; // a reply nobody asked for: out of step from now on
    }
  }

  #close(error?: Error): void {
    this.#closed = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(error ?? closedError("the server closed the connection"));
  }
}

function closedError(message: string): Error {
  return Object.assign(new Error(message), { code: "ERR_CLOSED" });
}

/** Makes a {@linkcode Factory} of {@linkcode LineConnection}s to `port` on `options.host`. */
export function lineClientFactory(
  port: number,
  options: LineClientOptions = {},
): Factory<LineConnection> {
  const { host = "127.0.0.1", closeTimeoutMs = 1_000 } = options;
  return {
    create(signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      return new Promise<LineConnection>((resolve, reject) => {
        const socket = connect({ host, port });
        const settle = (error?: unknown) => {
          signal.removeEventListener("abort", onAbort);
          socket.off("connect", onConnect);
          socket.off("error", settle);
          if (error === undefined) return resolve(new LineConnection(socket));
          socket.destroy();
          reject(error);
        };
        const onConnect = () => settle();
        const onAbort = () => settle(signal.reason);
        socket.once("connect", onConnect);
        socket.once("error", settle);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    },
    async validate(conn, signal) {
      return (await conn.request("PING", { signal })) === "PONG";
    },
    reset(conn) {
      if (!conn.alive || conn.busy) throw new Error("the connection has a reply outstanding");
    },
    destroy: (conn) => conn.close(closeTimeoutMs),
    isAlive: (conn) => conn.alive,
    isBroken: (conn, error) => !conn.alive || isSocketError(error),
  };
}

// ---------------------------------------------------------------------------------- the demo

/** A line server: `PING` → `PONG`, `WHO` → the connection's number, `SLEEP ms` → `OK` later. */
function startDemoServer(): Promise<{ port: number; drop(): void; close(): Promise<void> }> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const id = ++accepted;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buffer = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => {
      buffer += chunk;
      for (let end; (end = buffer.indexOf("\n")) >= 0; buffer = buffer.slice(end + 1)) {
        const [command, arg] = buffer.slice(0, end).split(" ");
        if (command === "PING") socket.write("PONG\n");
        else if (command === "WHO") socket.write(`${id}\n`);
        else if (command === "SLEEP") setTimeout(() => socket.write("OK\n"), Number(arg));
        else socket.write("ERR unknown command\n");
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as { port: number }).port,
        drop: () => sockets.forEach((s) => s.destroy()),
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

if (import.meta.main) {
  const server = await startDemoServer();
  const pool = new Pool(lineClientFactory(server.port), { max: 3, acquireTimeoutMs: 3_000 });
  const who = () =>
    pool.use(async (conn) => {
      await conn.request("SLEEP 5"); // some work holding the connection
      return Number(await conn.request("WHO"));
    });
  try {
    const first = await Promise.all(Array.from({ length: 30 }, who));
    console.log(
      `30 requests over connections ${[...new Set(first)].sort((a, b) => a - b).join(", ")}`,
    );
    server.drop(); // the server closes every connection
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await Promise.all(Array.from({ length: 10 }, who));
    console.log(
      `after the server dropped them: 10 requests over ${
        [...new Set(second)].sort((a, b) => a - b).join(", ")
      }`,
    );
    const s = pool.stats();
    console.log(`${s.created} connections opened, ${s.destroyed} replaced, max 3`);
  } finally {
    await pool.close();
    await server.close();
  }
}
