/**
 * A {@linkcode Factory} of PostgreSQL connections made with
 * [postgres.js](https://github.com/porsager/postgres). Each pooled resource is one dedicated
 * connection: a postgres.js client with `max: 1` and its own idle timeout and lifetime turned
 * off, so the pool alone decides when a connection lives and dies.
 *
 * The driver is passed in (`import postgres from "postgres"`), so edgepool never depends on it.
 * Errors that leave the factory never contain the password: driver errors that mention it (or a
 * URL with userinfo) are replaced by a redacted copy that keeps `code` and `severity`.
 *
 * @example A pool of postgres.js connections
 * ```ts
 * import postgres from "postgres";
 * import { Pool } from "@edgepool/pool";
 * import { postgresFactory } from "@edgepool/pool/postgres";
 *
 * const factory = postgresFactory(postgres, "postgres://app:secret@127.0.0.1:5432/app", {
 *   reset: "rollback",
 *   connectTimeoutMs: 5_000,
 * });
 * await using pool = new Pool(factory, { max: 10, validateTimeoutMs: 2_000 });
 * // const rows = await pool.use((sql) => sql`select now()`);
 * ```
 *
 * @module
 */

import type { Factory, ResourceInfo } from "../options.ts";
import { after, cancelAfter, monotonicNow, type TimerHandle } from "../_timers.ts";
import { raceSignal } from "./_signal.ts";

export type { Factory, ResourceInfo };

/**
 * What the factory needs of a postgres.js client (`postgres.Sql`).
 *
 * @example A stand-in for tests
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { type PostgresClient, postgresFactory } from "@edgepool/pool/postgres";
 * import assert from "node:assert/strict";
 *
 * // The factory needs only these two methods, so a fake client is small.
 * class FakeClient implements PostgresClient {
 *   log: string[] = [];
 *   unsafe = (query: string) => Promise.resolve(this.log.push(query));
 *   end = () => Promise.resolve(void this.log.push("end"));
 * }
 * const pool = new Pool(postgresFactory(() => new FakeClient(), "postgres://localhost/app"));
 * const client = await pool.use((sql) => sql);
 * await pool.close();
 * assert.deepEqual(client.log, ["select 1", "rollback", "end"]);
 * ```
 */
export interface PostgresClient {
  /** Runs a query given as text (the simple protocol when there are no parameters). */
  unsafe(query: string): PromiseLike<unknown>;
  /** Closes the connection, waiting up to `timeout` seconds for running queries. */
  end(options?: { timeout?: number }): Promise<void>;
}

/**
 * How a pooled session is cleaned on release.
 *
 * @example What "discard" sends on release
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { postgresFactory, type PostgresResetMode } from "@edgepool/pool/postgres";
 * import assert from "node:assert/strict";
 *
 * const sent: string[] = [];
 * const driver = () => ({
 *   unsafe: (query: string) => Promise.resolve(sent.push(query)),
 *   end: () => Promise.resolve(),
 * });
 * // "discard" also clears what a user may leave in the session: settings, LISTEN, temp tables.
 * const reset: PostgresResetMode = "discard";
 * await using pool = new Pool(postgresFactory(driver, "postgres://localhost/app", { reset }));
 * await pool.use((sql) => sql.unsafe("set statement_timeout = 0"));
 * assert.match(sent.at(-1)!, /reset all;.*unlisten \*;.*discard temp/);
 * ```
 */
export type PostgresResetMode = "rollback" | "discard" | "none";

/**
 * Options of {@linkcode postgresFactory}.
 *
 * @example Options for a direct connection
 * ```ts
 * import postgres from "postgres";
 * import { Pool } from "@edgepool/pool";
 * import { postgresFactory, type PostgresFactoryOptions } from "@edgepool/pool/postgres";
 * import assert from "node:assert/strict";
 *
 * const options: PostgresFactoryOptions<postgres.Sql> = {
 *   reset: "discard", // users may leave settings or temp tables behind
 *   pipelineReset: true, // a direct connection (no PgBouncer): no round trip per release
 *   connectTimeoutMs: 5_000,
 *   onDisconnect: (client) => void pool.evict((c) => c === client), // replace it at once
 * };
 * const url = "postgres://app:secret@127.0.0.1:5432/app";
 * await using pool = new Pool(postgresFactory(postgres, url, options), { max: 10 });
 * assert.equal(pool.stats().total, 0); // nothing connects before the first acquire
 * ```
 */
export interface PostgresFactoryOptions<S> {
  /** The cheap query `validate()` runs. @default {"select 1"} */
  validateQuery?: string;
  /**
   * How a released connection is cleaned: `"rollback"` ends a transaction left open (postgres.js
   * does not expose the transaction status, so it always sends `ROLLBACK`; outside a transaction
   * that is a harmless warning); `"discard"` also resets session state (settings, temp tables,
   * advisory locks, LISTEN, cursors, plans) like `DISCARD ALL`, but keeps the prepared
   * statements postgres.js caches; `"none"` sends nothing (for PgBouncer in transaction mode
   * with autocommit only).
   * @default {"rollback"}
   */
  reset?: PostgresResetMode;
  /** SQL run on release instead of the `reset` mode's statements (not with `pipelineReset`). */
  resetQuery?: string;
  /**
   * Send the reset statements without waiting for their answer: the connection goes back to the
   * pool at once, and the next lease's queries follow them on the same socket (postgres.js sends
   * a connection's queries in order, and the server runs them in order), so they run after the
   * reset. That saves a round trip per release: with `reset: "rollback"`, 1.3-1.6x the
   * throughput of an awaited reset in `bench/pg_bench.ts`. A pipelined reset that fails, or goes
   * unanswered for `pipelinedResetTimeoutMs`, ends the connection: whoever holds it by then gets
   * a connection error, and the pool replaces it. The next lease's queries are already on their
   * way by then, so a reset must not fail half done: `"rollback"` is one statement and
   * `"discard"` runs in a transaction (a failure leaves it aborted, and the server refuses what
   * follows); a `resetQuery` cannot be pipelined (a `TypeError`).
   *
   * Off by default, because it is only safe on a direct connection: a pooler in transaction mode
   * (PgBouncer, Supavisor) can stall a query that postgres.js pipelines behind another one (with
   * PgBouncer 1.18 and `prepare: false`, any query with parameters sent behind the `ROLLBACK`
   * never answers). Off, `reset()` returns a promise that the pool awaits (bounded by its
   * `resetTimeoutMs`) before anyone else gets the connection.
   * @default {false}
   */
  pipelineReset?: boolean;
  /** How long a pipelined reset may go unanswered before the connection is ended. @default {5_000} */
  pipelinedResetTimeoutMs?: number;
  /** How long connecting may take (postgres.js `connect_timeout`). @default {10_000} */
  connectTimeoutMs?: number;
  /** How long `destroy()` lets running queries finish before closing the socket. @default {1_000} */
  endTimeoutMs?: number;
  /**
   * Called when a connection closes while the pool still holds it (killed backend, server
   * restart, network error), or is ended because a pipelined reset failed or went unanswered. Wire it to `pool.evict((c) => c === client)` to replace the
   * connection at once instead of at its next validation.
   */
  onDisconnect?: (client: S) => void;
}

/**
 * The postgres.js default export, or a driver with the same call signature.
 *
 * @example What the factory passes to the driver
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import {
 *   type PostgresClient,
 *   type PostgresDriver,
 *   postgresFactory,
 * } from "@edgepool/pool/postgres";
 * import assert from "node:assert/strict";
 *
 * let given: Record<string, unknown> = {};
 * const driver: PostgresDriver<PostgresClient, Record<string, unknown>> = (_url, options = {}) => {
 *   given = options;
 *   return { unsafe: () => Promise.resolve([]), end: () => Promise.resolve() };
 * };
 * const factory = postgresFactory(driver, "postgres://localhost/app", { connectTimeoutMs: 3_000 });
 * await using pool = new Pool(factory);
 * await pool.use(() => {});
 * assert.equal(given.max, 1); // one connection per pooled client: the pool does the pooling
 * assert.equal(given.connect_timeout, 3); // in seconds, as postgres.js takes it
 * ```
 */
export type PostgresDriver<S extends PostgresClient, O> = (url: string, options?: O) => S;

const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "57P01", // admin_shutdown: pg_terminate_backend, fast shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "25P03", // idle_in_transaction_session_timeout (the session is closed)
  "57P05", // idle_session_timeout
]);

/**
 * Whether `error` means the connection is gone (not merely that a query failed): postgres.js
 * connection codes, socket errors, SQLSTATE class 08, shutdown codes, and any FATAL error.
 *
 * @example
 * ```ts
 * import { isConnectionError } from "@edgepool/pool/postgres";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isConnectionError(Object.assign(new Error("x"), { code: "57P01" })), true);
 * assert.equal(isConnectionError(Object.assign(new Error("x"), { code: "23505" })), false);
 * ```
 */
export function isConnectionError(error: unknown): boolean {
  if (error === null || typeof error !== "object") return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  if (severity === "FATAL" || severity === "PANIC") return true;
  if (typeof code !== "string") return false;
  return CONNECTION_CODES.has(code) || code.startsWith("08");
}

// ------------------------------------------------------------------------- redaction

// A URL's password: up to the `@` before the host, `/`, `?` and `#` included (a password pasted
// without percent-encoding them makes an invalid URL, which the driver's error quotes whole).
const USERINFO = /([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*):[^\s@]*@/gi;
const SAFE_FIELDS = [
  "code",
  "errno",
  "severity",
  "severity_local",
  "routine",
  "detail",
  "hint",
  "address",
  "port",
  "syscall",
] as const;

/** The password's spellings in a URL or options, as they may appear in a message. */
function secretsOf(connection: unknown): string[] {
  const found = new Set<string>();
  const add = (s: unknown) => {
    if (typeof s === "string" && s.length >= 3) found.add(s);
  };
  if (typeof connection === "string") {
    // Where the userinfo ends is ambiguous in a URL whose password was not percent-encoded
    // ("/", "?", "#" or "@" in it): take every reading, up to the first `@` and up to the last.
    const rest = /^[a-z][a-z0-9+.-]*:\/\/(\S*)/i.exec(connection)?.[1] ?? "";
    for (const at of [rest.indexOf("@"), rest.lastIndexOf("@")]) {
      const userinfo = at < 0 ? "" : rest.slice(0, at);
      const colon = userinfo.indexOf(":");
      if (colon < 0) continue;
      const raw = userinfo.slice(colon + 1);
      add(raw);
      try {
        add(decodeURIComponent(raw));
      } catch { /* malformed escape: the raw spelling suffices */ }
    }
  } else if (connection !== null && typeof connection === "object") {
    const o = connection as { password?: unknown; pass?: unknown };
    add(o.password);
    add(o.pass);
  }
  for (const s of [...found]) add(encodeURIComponent(s));
  // Longest first, so that a reading that contains another is replaced whole.
  return [...found].sort((a, b) => b.length - a.length);
}

function redactText(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join("***");
  return out.replace(USERINFO, "$1:***@");
}

function isDirty(error: object, secrets: string[], depth = 0): boolean {
  for (const key of Object.getOwnPropertyNames(error)) {
    let value: unknown;
    try {
      value = (error as Record<string, unknown>)[key];
    } catch {
      continue;
    }
    if (typeof value === "string") {
      USERINFO.lastIndex = 0;
      if (USERINFO.test(value) || secrets.some((s) => value.includes(s))) return true;
    } else if (key === "cause" && value !== null && typeof value === "object" && depth < 3) {
      if (isDirty(value, secrets, depth + 1)) return true;
    }
  }
  return false;
}

/**
 * `error` itself when it does not contain a secret, else a redacted copy: same name, message
 * and safe fields with secrets replaced by `***`, and no `cause`.
 */
function sanitize(error: unknown, secrets: string[]): unknown {
  if (error === null || typeof error !== "object") {
    return typeof error === "string" ? redactText(error, secrets) : error;
  }
  if (!isDirty(error, secrets)) return error;
  const e = error as Record<string, unknown>;
  const copy = new Error(redactText(String(e.message ?? ""), secrets)) as
    & Error
    & Record<string, unknown>;
  copy.name = typeof e.name === "string" ? e.name : "Error";
  for (const key of SAFE_FIELDS) {
    const value = e[key];
    if (value !== undefined) {
      copy[key] = typeof value === "string" ? redactText(value, secrets) : value;
    }
  }
  if (typeof e.stack === "string") copy.stack = redactText(e.stack, secrets);
  return copy;
}

// ------------------------------------------------------------------------- the factory

interface State {
  /** The connection closed (or was found hung): never reuse the client. */
  dead: boolean;
  /** We are ending it: its close is expected. */
  ending: boolean;
  /** When each unanswered pipelined reset was sent (monotonic ms), oldest first. */
  resets: number[];
  /** Checks the oldest pipelined reset; armed only while one is unanswered. */
  watchdog: TimerHandle | undefined;
}

const noop = () => {};

/** A connection's state; `dead` for one the factory never made (or that is already gone). */
const newState = (dead: boolean): State => ({
  dead,
  ending: dead,
  resets: [],
  watchdog: undefined,
});

/** A finite duration ≥ 0 ms, or > 0 ms where 0 would make no sense (`positive`). */
function checkDuration(
  what: string,
  value: number | undefined,
  fallback: number,
  positive = false,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") {
    throw new TypeError(`${what} must be a number, received ${typeof value}`);
  }
  if (!(positive ? value > 0 : value >= 0) || value === Infinity) {
    const bound = positive ? "> 0" : "≥ 0";
    throw new RangeError(`${what} must be a finite duration ${bound} ms, received ${value}`);
  }
  return value;
}

const RESET_SQL: Record<PostgresResetMode, string | undefined> = {
  rollback: "rollback",
  // DISCARD ALL minus DEALLOCATE ALL (postgres.js caches its prepared statements per connection).
  // DISCARD ALL itself cannot run in the transaction of a multi-statement query. The statements
  // run in an explicit transaction so that one failing (DISCARD TEMP of many tables can run out
  // of locks) leaves it aborted, all undone: whatever follows on the connection (the next
  // lease's queries, pipelined behind it) is then refused by the server, never run in the
  // uncleaned session, until the factory ends the connection.
  discard: "rollback; begin; close all; set session authorization default; reset all; " +
    "unlisten *; select pg_advisory_unlock_all(); discard plans; discard temp; " +
    "discard sequences; commit",
  none: undefined,
};

/**
 * Makes a factory of dedicated postgres.js connections for a {@linkcode Pool}.
 *
 * `connection` is a URL or a postgres.js options object; the pool-related client options are
 * overridden (`max: 1`, `idle_timeout: 0`, `max_lifetime: null`, and `connect_timeout` from
 * `connectTimeoutMs`), and notices are dropped
 * unless `onnotice` is given. Pass `prepare: false` in it for PgBouncer in transaction mode.
 *
 * - `create(signal)` connects and runs `select 1`, so a wrong password or a down server fails
 *   the create; aborting `signal` closes the half-made connection.
 * - `validate` runs `validateQuery`, and fails at once for a connection known to be closed.
 * - `reset` applies the `reset` mode; it throws for a closed connection, which destroys it.
 *   With `pipelineReset` (for direct connections only), it is sent and not awaited, so a release
 *   costs no round trip, and the next lease's queries run after it.
 * - `destroy` ends the client, waiting at most `endTimeoutMs` for running queries.
 * - `isAlive` is false once the driver saw the connection close, so the pool never hands out a
 *   connection known to be dead, even one returned within `validateBypassMs`.
 * - `isBroken` is true for connection-level errors ({@linkcode isConnectionError}).
 *
 * A client whose connection closed is ended at once, so its next query rejects with
 * `CONNECTION_ENDED` instead of reconnecting silently with a fresh session.
 *
 * Do not call `sql.end()`, `sql.listen()` or `sql.subscribe()` on a pooled client: the first
 * breaks it for the next user, the others open extra connections outside the pool.
 *
 * A postgres.js quirk: with `fetch_types` on (its default, needed to parse arrays), a client
 * fetches the server's array types right after connecting and awaits nothing of it, so a
 * connection that dies in that short window rejects a promise nobody handles (an
 * `unhandledRejection`, fatal on Node by default). The factory therefore ends an aborted
 * create gracefully (within `endTimeoutMs`) rather than at once.
 *
 * @example Run a transaction on a pooled connection
 * ```ts ignore
 * import postgres from "postgres";
 * import { Pool } from "@edgepool/pool";
 * import { postgresFactory } from "@edgepool/pool/postgres";
 *
 * const pool = new Pool(
 *   postgresFactory(postgres, Deno.env.get("DATABASE_URL")!, {
 *     onDisconnect: (client) => void pool.evict((c) => c === client),
 *   }),
 *   { min: 2, max: 10 },
 * );
 * const [user] = await pool.use((sql) =>
 *   sql.begin((tx) => tx`insert into users (name) values (${"ada"}) returning id`)
 * );
 * await pool.close();
 * ```
 */
export function postgresFactory<S extends PostgresClient, O extends object>(
  postgres: PostgresDriver<S, O>,
  connection: string | O,
  options: PostgresFactoryOptions<S> = {},
): Factory<S> {
  if (typeof postgres !== "function") {
    throw new TypeError(
      `postgres must be the postgres.js default export (a function), received ${typeof postgres}`,
    );
  }
  if (typeof connection !== "string" && (connection === null || typeof connection !== "object")) {
    throw new TypeError("connection must be a URL string or a postgres.js options object");
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError("options must be an object");
  }
  const validateQuery = options.validateQuery ?? "select 1";
  if (typeof validateQuery !== "string" || validateQuery.trim() === "") {
    throw new TypeError("validateQuery must be a non-empty string");
  }
  const mode = options.reset ?? "rollback";
  if (!(mode in RESET_SQL)) {
    throw new TypeError(`reset must be "rollback", "discard" or "none", received ${String(mode)}`);
  }
  if (options.resetQuery !== undefined && typeof options.resetQuery !== "string") {
    throw new TypeError("resetQuery must be a string");
  }
  if (options.resetQuery !== undefined && options.reset !== undefined) {
    throw new TypeError("give either reset or resetQuery, not both");
  }
  const resetSql = options.resetQuery ?? RESET_SQL[mode];
  const pipelineReset = options.pipelineReset ?? false;
  if (typeof pipelineReset !== "boolean") {
    throw new TypeError(`pipelineReset must be a boolean, received ${typeof pipelineReset}`);
  }
  if (pipelineReset && options.resetQuery !== undefined) {
    // Statements after a failed one are skipped, but the server still runs the next query sent
    // behind them: a custom reset that fails part-way would hand over an uncleaned session.
    throw new TypeError(
      'pipelineReset works with reset "rollback" or "discard", not with a resetQuery',
    );
  }
  // 0 would end every connection whose reset is not answered within the same tick.
  const pipelinedResetTimeoutMs = checkDuration(
    "pipelinedResetTimeoutMs",
    options.pipelinedResetTimeoutMs,
    5_000,
    true,
  );
  const connectTimeoutMs = checkDuration(
    "connectTimeoutMs",
    options.connectTimeoutMs,
    10_000,
    true,
  );
  const endTimeoutMs = checkDuration("endTimeoutMs", options.endTimeoutMs, 1_000);
  const onDisconnect = options.onDisconnect;
  if (onDisconnect !== undefined && typeof onDisconnect !== "function") {
    throw new TypeError("onDisconnect must be a function");
  }

  const url = typeof connection === "string" ? connection : undefined;
  const given = (typeof connection === "string" ? {} : connection) as Record<string, unknown>;
  const secrets = secretsOf(connection);
  const clean = (error: unknown) => sanitize(error, secrets);
  const states = new WeakMap<S, State>();

  const end = (sql: S, state: State, timeoutMs: number): Promise<void> => {
    state.ending = true;
    if (state.watchdog !== undefined) {
      cancelAfter(state.watchdog);
      state.watchdog = undefined;
    }
    return Promise.resolve(sql.end({ timeout: timeoutMs / 1000 })).catch(noop);
  };

  // The connection can no longer be trusted with the next user's session: end it now, so what
  // is queued on it fails with a connection error (and the pool replaces it) instead of running.
  const abandon = (sql: S, state: State): void => {
    if (state.ending || state.dead) return;
    state.dead = true;
    void end(sql, state, 0);
    try {
      onDisconnect?.(sql);
    } catch { /* ignore */ }
  };

  const watch = (sql: S, state: State, delayMs: number): void => {
    state.watchdog = after(delayMs, () => {
      state.watchdog = undefined;
      if (state.resets.length === 0 || state.ending || state.dead) return;
      const dueIn = state.resets[0] + pipelinedResetTimeoutMs - monotonicNow();
      if (dueIn > 0) watch(sql, state, dueIn);
      else abandon(sql, state);
    }, true); // unref'd: a reset in flight never keeps the process alive by itself
  };

  // Sends the reset statements and returns at once. One watchdog per connection (not a timer per
  // release) checks that the oldest unanswered one is answered within pipelinedResetTimeoutMs.
  const sendReset = (sql: S, state: State, statements: string): void => {
    state.resets.push(monotonicNow());
    // .then() straight on the driver's query (not through Promise.resolve, which would call it a
    // microtask later) so that it is queued before anything the next lease sends.
    sql.unsafe(statements).then(() => {
      state.resets.shift();
    }, () => {
      state.resets.shift();
      abandon(sql, state);
    });
    if (state.watchdog === undefined) watch(sql, state, pipelinedResetTimeoutMs);
  };

  return {
    async create(signal: AbortSignal): Promise<S> {
      if (signal.aborted) throw signal.reason;
      const state = newState(false);
      let sql: S | undefined;
      const userOnClose = given.onclose as ((id: number) => void) | undefined;
      const clientOptions = {
        onnotice: noop,
        ...given,
        max: 1,
        idle_timeout: 0,
        max_lifetime: null,
        connect_timeout: connectTimeoutMs / 1000,
        onclose(id: number) {
          try {
            userOnClose?.(id);
          } catch { /* a user hook must not break our bookkeeping */ }
          if (sql === undefined) state.dead = true;
          // postgres.js would reconnect on the next query: a new session the user did not ask for.
          else abandon(sql, state);
        },
      } as unknown as O;
      try {
        sql = url === undefined
          ? (postgres as unknown as (o: O) => S)(clientOptions)
          : postgres(url, clientOptions);
      } catch (error) {
        throw clean(error);
      }
      states.set(sql, state);
      try {
        await raceSignal(sql.unsafe("select 1"), signal);
      } catch (error) {
        const aborted = signal.aborted && error === signal.reason;
        state.dead = true;
        // Aborted mid-connect, the client may be fetching array types: postgres.js runs that
        // query with nobody awaiting it, so ending the client at once would reject it unhandled
        // (a crash on Node). Ending gracefully lets the startup finish first; awaiting it keeps
        // the work inside the pool's accounting, so close() waits for it.
        if (aborted) await end(sql, state, endTimeoutMs);
        else void end(sql, state, 0);
        throw aborted ? error : clean(error);
      }
      if (state.dead) throw clean(new Error("the connection closed while it was being made"));
      return sql;
    },

    async validate(sql: S, signal: AbortSignal): Promise<boolean> {
      const state = states.get(sql);
      if (state === undefined || state.dead) return false;
      try {
        await raceSignal(sql.unsafe(validateQuery), signal);
      } catch (error) {
        // Unanswered or failed: the connection cannot be trusted, so destroy() won't wait on it.
        state.dead = true;
        throw signal.aborted && error === signal.reason ? error : clean(error);
      }
      return !state.dead;
    },

    // Synchronous when there is nothing to send (reset "none"): the pool then arms no deadline
    // and awaits nothing for it.
    reset(sql: S): void | Promise<void> {
      const state = states.get(sql);
      if (state === undefined || state.dead) {
        throw new Error("cannot reuse the connection: it was closed");
      }
      if (resetSql === undefined) return;
      if (pipelineReset) return sendReset(sql, state, resetSql);
      return Promise.resolve(sql.unsafe(resetSql)).then(() => {}, (error: unknown) => {
        state.dead = true;
        throw clean(error);
      });
    },

    async destroy(sql: S): Promise<void> {
      const state = states.get(sql) ?? newState(true);
      await end(sql, state, state.dead ? 0 : endTimeoutMs);
    },

    isAlive(sql: S): boolean {
      return states.get(sql)?.dead === false;
    },

    isBroken(sql: S, error: unknown): boolean {
      const state = states.get(sql);
      // The socket is gone: destroy() must not wait for it to drain. postgres.js never settles
      // end() for a socket that failed (ECONNRESET) with a query in flight, so it would take
      // the whole endTimeoutMs, holding the caller's error and the pool's slot.
      if (state !== undefined && isConnectionError(error)) state.dead = true;
      return state?.dead === true || isConnectionError(error);
    },
  };
}
