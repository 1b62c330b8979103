/**
 * A recipe: pooling a client edgepool does not ship a factory for, shown with node-redis (npm
 * `redis`). Everything the pool needs is the {@linkcode Factory} interface; this file is the
 * whole adapter, and `tests/integration/redis_test.ts` runs it against a real `redis-server`.
 *
 * - `create(signal)` connects (a client of its own per resource, which never reconnects by
 *   itself: a dropped connection is the pool's to replace) and gives up when `signal` aborts.
 * - `validate` sends `PING`, bounded by the pool's `validateTimeoutMs` through `signal`.
 * - `reset` sends `RESET` (node-redis `client.reset()`) when the lease left the connection in
 *   pub/sub or `WATCH` mode, or on every release with `reset: "always"`.
 * - `destroy` closes gracefully (pending replies first), then forcibly after `closeTimeoutMs`.
 * - `isAlive` is `client.isReady`: a connection the server killed is never handed out.
 * - `isBroken` is true for connection errors, so `pool.use()` drops a client that failed that way.
 *
 * A single node-redis client already pipelines concurrent commands over one connection; pool
 * clients when a caller needs a connection to itself: `WATCH`/`MULTI` transactions, blocking
 * commands (`BLPOP`, `XREAD BLOCK`), `SUBSCRIBE`, `SELECT`, or to spread load over a few sockets.
 *
 * Run (against `REDIS_URL`, default `redis://127.0.0.1:6379`):
 *
 *   deno run -A examples/redis.ts · bun examples/redis.ts · node examples/redis.ts
 *
 * @module
 */
import process from "node:process";
import {
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  createClient,
  DisconnectsClientError,
  type RedisClientType,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
} from "redis";
import { type Factory, Pool } from "../mod.ts";

/** A node-redis client as `createClient()` makes it (RESP3, the default modules). */
export type RedisClient = RedisClientType;

/** Options of {@linkcode redisFactory}. */
export interface RedisFactoryOptions {
  /** The name each connection gives itself (`CLIENT SETNAME`), e.g. to find them in `CLIENT LIST`. */
  name?: string;
  /** How long connecting may take (node-redis `socket.connectTimeout`). @default {5_000} */
  connectTimeoutMs?: number;
  /** How long `destroy()` waits for pending replies before closing the socket. @default {1_000} */
  closeTimeoutMs?: number;
  /**
   * `"dirty"` sends `RESET` only when the connection is in pub/sub or `WATCH` mode (what
   * node-redis can see; no round trip otherwise); `"always"` on every release (also undoes
   * `SELECT`, `CLIENT TRACKING`, a raw `MULTI`); `"none"` never.
   * @default {"dirty"}
   */
  reset?: "dirty" | "always" | "none";
}

const CONNECTION_ERRORS = [
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  DisconnectsClientError,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
];
const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTCONN"]);

/** Whether `error` means the connection is gone, not merely that a command failed. */
export function isRedisConnectionError(error: unknown): boolean {
  if (CONNECTION_ERRORS.some((type) => error instanceof type)) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && SOCKET_CODES.has(code);
}

/** Settles with `work`, or rejects with `signal.reason` once `signal` aborts; no listener stays. */
function raceSignal<R>(work: Promise<R>, signal: AbortSignal): Promise<R> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<R>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Makes a {@linkcode Factory} of node-redis connections to `url` (`redis://user:pass@host:port/db`). */
export function redisFactory(url: string, options: RedisFactoryOptions = {}): Factory<RedisClient> {
  const { name, connectTimeoutMs = 5_000, closeTimeoutMs = 1_000, reset = "dirty" } = options;
  // Clients whose connection can no longer be trusted (a PING went unanswered): close at once.
  const untrusted = new WeakSet<RedisClient>();

  return {
    async create(signal) {
      const client = createClient({
        url,
        name,
        // Commands on a dropped connection fail at once instead of waiting for a reconnect that
        // never comes: the pool replaces the client.
        disableOfflineQueue: true,
        socket: { connectTimeout: connectTimeoutMs, reconnectStrategy: false },
      });
      // node-redis reports a dropped connection as an "error" event: without a listener it
      // would crash the process. The failure itself surfaces through isReady and the commands.
      client.on("error", () => {});
      const connecting = client.connect();
      try {
        await raceSignal(connecting, signal);
        return client;
      } catch (error) {
        // Aborted mid-connect: drop the half-open socket, also when it is still being opened
        // (node-redis assigns it only once TCP connected, and then awaits the handshake).
        client.destroy();
        client.once("connect", () => client.destroy());
        connecting.catch(() => {});
        throw error;
      }
    },

    async validate(client, signal) {
      try {
        return client.isReady && (await raceSignal(client.ping(), signal)) === "PONG";
      } catch (error) {
        untrusted.add(client);
        throw error;
      }
    },

    async reset(client) {
      if (!client.isReady) throw new Error("cannot reuse the connection: it was closed");
      if (reset === "always") {
        await client.reset();
        // node-redis's reset() selects again the database last SELECTed: undo that too.
        await client.select(client.options?.database ?? 0);
      } else if (reset === "dirty" && (client.isPubSubActive || client.isWatching)) {
        await client.reset();
      }
    },

    async destroy(client) {
      // Already closed (destroy() still releases what node-redis holds), or not to be trusted.
      if (!client.isOpen || untrusted.has(client)) return client.destroy();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), closeTimeoutMs);
      });
      const closed = client.close().catch(() => {});
      if ((await Promise.race([closed, late])) === "late") client.destroy();
      clearTimeout(timer);
    },

    isAlive: (client) => client.isReady,

    isBroken: (client, error) => !client.isReady || isRedisConnectionError(error),
  };
}

// A tiny program that uses it: 20 concurrent counters through 4 connections.
if (import.meta.main) {
  const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const pool = new Pool(redisFactory(url, { name: "edgepool-example" }), {
    max: 4,
    acquireTimeoutMs: 3_000,
  });
  try {
    const key = `edgepool:example:${process.pid}`;
    const counts = await Promise.all(
      Array.from({ length: 20 }, () => pool.use((redis) => redis.incr(key))),
    );
    // A transaction needs a connection to itself: WATCH, then MULTI/EXEC on the same client.
    const final = await pool.use(async (redis) => {
      await redis.watch(key);
      const n = Number(await redis.get(key));
      const [, value] = await redis.multi().set(key, String(n * 2)).get(key).exec();
      await redis.del(key);
      return value;
    });
    const s = pool.stats();
    console.log(`${counts.length} increments, highest ${Math.max(...counts)}; doubled: ${final}`);
    console.log(`${s.created} connections opened for ${s.acquired} leases (max 4)`);
  } catch (error) {
    console.error(`redis example failed (is a server listening at ${url}?):`, error);
    process.exitCode = 1;
  } finally {
    await pool.close();
  }
}
