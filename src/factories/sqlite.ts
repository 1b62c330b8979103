/**
 * A {@linkcode Factory} of SQLite connections through the runtime's own driver: `node:sqlite`
 * (Node 22.5+, Deno 2.2+, Bun 1.3+) or `bun:sqlite` (Bun), chosen by feature detection with a
 * dynamic `import()`, behind one small interface, {@linkcode SqliteConnection}.
 *
 * Each pooled resource is its own connection to the same file. With WAL (the default for files)
 * readers never block the writer and see a consistent snapshot; writers queue on the busy
 * timeout. A `":memory:"` database is private to its connection, so a pool of them shares
 * nothing.
 *
 * The drivers are synchronous, and so is the wait on the busy timeout: it blocks the thread. In
 * one process, a write transaction held across an `await` makes another connection's write
 * freeze the process for `busyTimeoutMs`, then fail with `database is locked`. Keep write
 * transactions free of `await`, or give writes a pool of their own with `max: 1`.
 *
 * @example
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { sqliteFactory } from "@edgepool/pool/sqlite";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(sqliteFactory(":memory:"), { max: 1 });
 * const row = await pool.use((db) => db.get<{ answer: number }>("select 40 + ? as answer", 2));
 * assert.equal(row?.answer, 42);
 * ```
 *
 * @module
 */

import type { Factory, ResourceInfo } from "../options.ts";

export type { Factory, ResourceInfo };

/**
 * A value SQLite can bind. SQLite has no boolean: `true` and `false` are bound as 1 and 0 (on
 * every driver; Deno's and Bun's node:sqlite would refuse them).
 *
 * @example How each kind of value is stored
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { sqliteFactory, type SqliteValue } from "@edgepool/pool/sqlite";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(sqliteFactory(":memory:"), { max: 1 });
 * const values: SqliteValue[] = ["text", 1.5, 7n, true, null, new Uint8Array([1, 2])];
 * const types = await pool.use((db) =>
 *   values.map((value) => db.get<{ type: string }>("select typeof(?) as type", value)?.type)
 * );
 * assert.deepEqual(types, ["text", "real", "integer", "integer", "null", "blob"]);
 * ```
 */
export type SqliteValue = string | number | bigint | boolean | null | Uint8Array;

/**
 * Parameters: positional values, or one object of named values (`:name`, `$name`, `@name`).
 *
 * @example Positional and named parameters
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { sqliteFactory, type SqliteParams } from "@edgepool/pool/sqlite";
 * import assert from "node:assert/strict";
 *
 * const byPosition: SqliteParams = ["ada", 36];
 * const byName: SqliteParams = [{ name: "ada", age: 36 }];
 * await using pool = new Pool(sqliteFactory(":memory:"), { max: 1 });
 * const count = await pool.use((db) => {
 *   db.exec("create table people (name text, age integer)");
 *   db.run("insert into people values (?, ?)", ...byPosition);
 *   const sql = "select count(*) as n from people where name = :name and age = :age";
 *   return db.get<{ n: number }>(sql, ...byName)?.n;
 * });
 * assert.equal(count, 1);
 * ```
 */
export type SqliteParams = SqliteValue[] | [Record<string, SqliteValue>];

/**
 * What `run()` reports.
 *
 * @example Rows changed and the last rowid
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { sqliteFactory, type SqliteRunResult } from "@edgepool/pool/sqlite";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool(sqliteFactory(":memory:"), { max: 1 });
 * const result: SqliteRunResult = await pool.use((db) => {
 *   db.exec("create table notes (body text)");
 *   return db.run("insert into notes values (?), (?)", "first", "second");
 * });
 * // number or bigint, depending on the driver: Number() reads both.
 * assert.deepEqual([Number(result.changes), Number(result.lastInsertRowid)], [2, 2]);
 * ```
 */
export interface SqliteRunResult {
  /** Rows changed by the statement. */
  changes: number | bigint;
  /** The rowid of the last inserted row. */
  lastInsertRowid: number | bigint;
}

/**
 * One SQLite connection, the same on every runtime.
 *
 * @example A helper that takes a connection
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { type SqliteConnection, sqliteFactory } from "@edgepool/pool/sqlite";
 * import assert from "node:assert/strict";
 *
 * function insertAll(db: SqliteConnection, names: string[]): void {
 *   db.exec("begin");
 *   for (const name of names) db.run("insert into users (name) values (?)", name);
 *   db.exec("commit");
 * }
 * await using pool = new Pool(sqliteFactory(":memory:"), { max: 1 });
 * const count = await pool.use((db) => {
 *   db.exec("create table users (name text)");
 *   insertAll(db, ["ada", "grace"]);
 *   return db.get<{ n: number }>("select count(*) as n from users")?.n;
 * });
 * assert.equal(count, 2);
 * ```
 */
export interface SqliteConnection {
  /** Runs one or more statements without results. */
  exec(sql: string): void;
  /** Runs a query and returns every row. */
  all<R = Record<string, unknown>>(sql: string, ...params: SqliteParams): R[];
  /** Runs a query and returns its first row, or `undefined`. */
  get<R = Record<string, unknown>>(sql: string, ...params: SqliteParams): R | undefined;
  /** Runs a statement and reports what it changed. */
  run(sql: string, ...params: SqliteParams): SqliteRunResult;
  /** True while a transaction is open. */
  readonly inTransaction: boolean;
  /** Which driver made it. */
  readonly driver: SqliteDriverName;
  /** The driver's own database object (`DatabaseSync` or bun's `Database`), for what this interface lacks. */
  readonly raw: unknown;
}

/**
 * The modules the factory can use.
 *
 * @example Choose the driver
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { type SqliteDriverName, sqliteFactory } from "@edgepool/pool/sqlite";
 * import assert from "node:assert/strict";
 *
 * const driver: SqliteDriverName = "Bun" in globalThis ? "bun:sqlite" : "node:sqlite";
 * await using pool = new Pool(sqliteFactory(":memory:", { driver }), { max: 1 });
 * assert.equal(await pool.use((db) => db.driver), driver);
 * ```
 */
export type SqliteDriverName = "node:sqlite" | "bun:sqlite";

/**
 * Options of {@linkcode sqliteFactory}.
 *
 * @example Wait longer for another connection's lock
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { sqliteFactory, type SqliteFactoryOptions } from "@edgepool/pool/sqlite";
 * import assert from "node:assert/strict";
 *
 * const options: SqliteFactoryOptions = { busyTimeoutMs: 10_000, statementCacheSize: 128 };
 * await using pool = new Pool(sqliteFactory(":memory:", options), { max: 1 });
 * const row = await pool.use((db) => db.get<{ timeout: number }>("pragma busy_timeout"));
 * assert.equal(row?.timeout, 10_000);
 * ```
 */
export interface SqliteFactoryOptions {
  /** Switch a file database to WAL journaling (ignored for `:memory:` and read-only). @default {true} */
  wal?: boolean;
  /** How long a statement waits for another connection's lock (`PRAGMA busy_timeout`). @default {5_000} */
  busyTimeoutMs?: number;
  /** Open the database read-only. @default {false} */
  readOnly?: boolean;
  /** The driver to use. @default {"node:sqlite" when available, else "bun:sqlite"} */
  driver?: SqliteDriverName;
  /** Prepared statements kept per connection. @default {64} */
  statementCacheSize?: number;
}

// ---------------------------------------------------------------- the drivers

interface Statement {
  all(...params: unknown[]): unknown[];
  get(...params: unknown[]): unknown;
  run(...params: unknown[]): SqliteRunResult;
  /**
   * bun:sqlite's: releases the statement. Its `db.close()` leaves a connection with statements
   * not finalized open (locks, transaction and files included) until they are collected.
   * node:sqlite's close finalizes them itself.
   */
  finalize?(): void;
}

interface Database {
  exec(sql: string): void;
  prepare(sql: string): Statement;
  close(): void;
}

interface Driver {
  open(path: string, readOnly: boolean): Database;
  inTransaction(db: Database): boolean;
}

const drivers = new Map<SqliteDriverName, Promise<Driver | undefined>>();

/** Imports a module by a computed name, so bundlers and type checkers leave it alone. */
function importOptional(specifier: string): Promise<Record<string, unknown> | undefined> {
  return import(specifier).then(
    (m: Record<string, unknown>) => m,
    () => undefined,
  );
}

function load(name: SqliteDriverName): Promise<Driver | undefined> {
  let pending = drivers.get(name);
  if (pending === undefined) {
    pending = importOptional(name).then((m): Driver | undefined => {
      if (name === "node:sqlite") {
        const DatabaseSync = m?.DatabaseSync as
          | (new (path: string, options: object) => Database & { isTransaction: boolean })
          | undefined;
        if (typeof DatabaseSync !== "function") return undefined;
        return {
          open: (path, readOnly) => new DatabaseSync(path, { readOnly }),
          inTransaction: (db) => (db as Database & { isTransaction: boolean }).isTransaction,
        };
      }
      const BunDatabase = m?.Database as
        | (new (path: string, options: object) => Database & { inTransaction: boolean })
        | undefined;
      if (typeof BunDatabase !== "function") return undefined;
      return {
        // strict: named parameters bind without their prefix, as with node:sqlite.
        open: (path, readOnly) =>
          new BunDatabase(path, readOnly ? { readonly: true, strict: true } : { strict: true }),
        inTransaction: (db) => (db as Database & { inTransaction: boolean }).inTransaction,
      };
    });
    drivers.set(name, pending);
  }
  return pending;
}

async function pickDriver(
  wanted: SqliteDriverName | undefined,
): Promise<[SqliteDriverName, Driver]> {
  for (const name of wanted ? [wanted] : ["node:sqlite", "bun:sqlite"] as const) {
    const driver = await load(name);
    if (driver) return [name, driver];
  }
  throw new Error(
    wanted
      ? `sqliteFactory: ${wanted} is not available in this runtime`
      : "sqliteFactory needs node:sqlite (Node 22.5+, Deno 2.2+, Bun 1.3+) or bun:sqlite (Bun); " +
        "this runtime has neither",
  );
}

// ---------------------------------------------------------------- the connection

/**
 * `params` with booleans as the integers 1 and 0 (bigints: node:sqlite binds a number as a real);
 * the same array when it has none (the common case).
 */
function bindable(params: SqliteParams): unknown[] {
  const [first] = params;
  if (params.length === 1 && first !== null && typeof first === "object" && !isBytes(first)) {
    const named = Object.entries(first);
    if (!named.some(([, v]) => typeof v === "boolean")) return params;
    return [Object.fromEntries(named.map(([k, v]) => [k, asInteger(v)]))];
  }
  return params.some((v) => typeof v === "boolean") ? params.map(asInteger) : params;
}

const asInteger = (v: unknown): unknown => typeof v === "boolean" ? (v ? 1n : 0n) : v;
const isBytes = (v: object): v is Uint8Array => v instanceof Uint8Array;

class Connection implements SqliteConnection {
  readonly driver: SqliteDriverName;
  readonly raw: unknown;
  readonly #db: Database;
  readonly #impl: Driver;
  readonly #cache = new Map<string, Statement>();
  readonly #cacheSize: number;

  constructor(name: SqliteDriverName, impl: Driver, db: Database, cacheSize: number) {
    this.driver = name;
    this.raw = db;
    this.#db = db;
    this.#impl = impl;
    this.#cacheSize = cacheSize;
  }

  get inTransaction(): boolean {
    return this.#impl.inTransaction(this.#db);
  }

  exec(sql: string): void {
    this.#db.exec(sql);
  }

  all<R>(sql: string, ...params: SqliteParams): R[] {
    return this.#execute(sql, (s) => s.all(...bindable(params)) as R[]);
  }

  get<R>(sql: string, ...params: SqliteParams): R | undefined {
    // bun:sqlite answers null for no row, node:sqlite undefined.
    return this.#execute(sql, (s) => (s.get(...bindable(params)) ?? undefined) as R | undefined);
  }

  run(sql: string, ...params: SqliteParams): SqliteRunResult {
    return this.#execute(sql, (s) => {
      const { changes, lastInsertRowid } = s.run(...bindable(params));
      return { changes, lastInsertRowid };
    });
  }

  /** Runs `use` on the statement for `sql`; one not kept in the cache is finalized after. */
  #execute<R>(sql: string, use: (statement: Statement) => R): R {
    const statement = this.#statement(sql);
    try {
      return use(statement);
    } finally {
      if (this.#cacheSize === 0) statement.finalize?.();
    }
  }

  /** @internal */
  close(): void {
    for (const statement of this.#cache.values()) statement.finalize?.();
    this.#cache.clear();
    this.#db.close();
  }

  /** A prepared statement for `sql`: cached (most recently used last), or fresh with no cache. */
  #statement(sql: string): Statement {
    let statement = this.#cache.get(sql);
    if (statement !== undefined) {
      this.#cache.delete(sql);
    } else {
      statement = this.#db.prepare(sql);
      if (this.#cacheSize > 0 && this.#cache.size >= this.#cacheSize) {
        const [oldest, evicted] = this.#cache.entries().next().value!;
        this.#cache.delete(oldest);
        evicted.finalize?.();
      }
    }
    if (this.#cacheSize > 0) this.#cache.set(sql, statement);
    return statement;
  }
}

// SQLite primary result codes that mean the connection or file is unusable, and their messages
// (Deno's node:sqlite gives only the message).
const BROKEN_CODES = new Set([
  10, /* IOERR */
  11, /* CORRUPT */
  14, /* CANTOPEN */
  26, /* NOTADB */
]);
const BROKEN_MESSAGE =
  /disk I\/O error|database disk image is malformed|unable to open database file|file is not a database/;

/**
 * Makes a factory of SQLite connections to the database at `path` for a {@linkcode Pool}.
 *
 * - `create()` opens the database, sets the busy timeout and, for files, WAL. Where the runtime
 *   has no SQLite module (e.g. Node 20), it throws an error that says what is needed.
 * - `validate()` runs `select 1`.
 * - `reset()` rolls back a transaction left open.
 * - `destroy()` closes the connection.
 * - `isBroken()` is true for I/O errors, corruption and a file that is not a database.
 *
 * @example Readers keep reading while a writer holds a transaction (WAL)
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { sqliteFactory } from "@edgepool/pool/sqlite";
 * import assert from "node:assert/strict";
 * import { mkdtempSync, rmSync } from "node:fs";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 *
 * const dir = mkdtempSync(join(tmpdir(), "edgepool-"));
 * const pool = new Pool(sqliteFactory(join(dir, "app.db"), { busyTimeoutMs: 1_000 }), { max: 4 });
 * await pool.use((db) => db.exec("create table notes (body text)"));
 * {
 *   await using writer = await pool.acquire();
 *   writer.value.exec("begin immediate");
 *   writer.value.run("insert into notes values (?)", "draft");
 *   const seen = await pool.use((db) => db.all("select * from notes"));
 *   assert.equal(seen.length, 0); // the reader sees the last commit
 *   writer.value.exec("commit");
 * }
 * await pool.close();
 * rmSync(dir, { recursive: true });
 * ```
 */
export function sqliteFactory(
  path: string,
  options: SqliteFactoryOptions = {},
): Factory<SqliteConnection> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`path must be a non-empty string, received ${typeof path}`);
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError("options must be an object");
  }
  const { wal = true, readOnly = false, driver, statementCacheSize = 64 } = options;
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  if (typeof busyTimeoutMs !== "number") {
    throw new TypeError(`busyTimeoutMs must be a number, received ${typeof busyTimeoutMs}`);
  }
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new RangeError(`busyTimeoutMs must be a whole number ≥ 0, received ${busyTimeoutMs}`);
  }
  if (!Number.isInteger(statementCacheSize) || statementCacheSize < 0) {
    throw new RangeError(
      `statementCacheSize must be a whole number ≥ 0, received ${statementCacheSize}`,
    );
  }
  for (const [name, value] of [["wal", wal], ["readOnly", readOnly]] as const) {
    if (typeof value !== "boolean") throw new TypeError(`${name} must be a boolean`);
  }
  if (driver !== undefined && driver !== "node:sqlite" && driver !== "bun:sqlite") {
    throw new TypeError(`driver must be "node:sqlite" or "bun:sqlite", received ${String(driver)}`);
  }
  const memory = path === ":memory:" || path.startsWith("file::memory:");

  return {
    async create(): Promise<SqliteConnection> {
      const [name, impl] = await pickDriver(driver);
      const db = impl.open(path, readOnly);
      try {
        db.exec(`pragma busy_timeout = ${busyTimeoutMs}`);
        if (wal && !readOnly && !memory) db.exec("pragma journal_mode = wal");
      } catch (error) {
        db.close();
        throw error;
      }
      return new Connection(name, impl, db, statementCacheSize);
    },
    validate(conn: SqliteConnection): boolean {
      conn.get("select 1");
      return true;
    },
    reset(conn: SqliteConnection): void {
      if (conn.inTransaction) conn.exec("rollback");
    },
    destroy(conn: SqliteConnection): void {
      (conn as Connection).close();
    },
    isBroken(_conn: SqliteConnection, error: unknown): boolean {
      if (error === null || typeof error !== "object") return false;
      const e = error as { errcode?: unknown; errno?: unknown; message?: unknown };
      const code = typeof e.errcode === "number" ? e.errcode : e.errno;
      if (typeof code === "number") return BROKEN_CODES.has(code & 0xff);
      return typeof e.message === "string" && BROKEN_MESSAGE.test(e.message);
    },
  };
}
