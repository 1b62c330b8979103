/**
 * The examples' database: an embedded SQLite file in a temporary directory, served through
 * edgepool's own {@linkcode sqliteFactory} (`node:sqlite` or `bun:sqlite`, whichever the runtime
 * has). No server to install, yet real connections: each one is its own handle on the same file
 * (WAL journal, busy timeout), so a write made through one is seen through the others.
 *
 * {@linkcode openExampleDb} creates the file with a small schema (`greetings`, and a one-row
 * `visits` counter) and returns a pool factory; disposing of it deletes the file.
 *
 * @example
 * ```ts ignore
 * import { Pool } from "../mod.ts";
 * import { openExampleDb } from "./_db.ts";
 *
 * await using db = await openExampleDb();
 * await using pool = new Pool(db.factory, { max: 4 });
 * const row = await pool.use((conn) => conn.get("select count(*) as n from greetings"));
 * ```
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Factory } from "../mod.ts";
import { type SqliteConnection, sqliteFactory } from "../src/factories/sqlite.ts";

/** One connection, as the examples use it. */
export type Connection = SqliteConnection;

/** The example database: where it lives and how to connect to it. */
export interface ExampleDb extends AsyncDisposable {
  /** What serves it, e.g. `SQLite 3.50.4 (node:sqlite), a temporary file`. */
  readonly description: string;
  /** The database file. */
  readonly path: string;
  /** A pool factory: {@linkcode sqliteFactory}, counting the connections it opens. */
  readonly factory: Factory<Connection>;
  /** Connections open right now (opened by the factory and not yet closed). */
  readonly openConnections: number;
}

/** Options of {@linkcode openExampleDb}. */
export interface ExampleDbOptions {
  /**
   * Extra time each new connection takes to open, as a network round trip, TLS and
   * authentication would cost with a database server. @default {0}
   */
  connectDelayMs?: number;
}

const GREETINGS = [
  ["en", "Hello"],
  ["fr", "Bonjour"],
  ["de", "Hallo"],
  ["es", "Hola"],
  ["it", "Ciao"],
  ["pt", "Olá"],
  ["nl", "Hallo"],
  ["sv", "Hej"],
  ["fi", "Hei"],
  ["pl", "Cześć"],
  ["tr", "Merhaba"],
  ["ja", "こんにちは"],
];

const SCHEMA = `
  create table if not exists greetings (id integer primary key, lang text not null, text text not null);
  insert into greetings (lang, text) values
    ${GREETINGS.map(([lang, text]) => `('${lang}', '${text}')`).join(",\n    ")};
  create table if not exists visits (id integer primary key check (id = 1), n integer not null);
  insert into visits (id, n) values (1, 0);
`;

/**
 * Waits `ms`, or rejects with `signal.reason` when aborted: in the examples it stands for a slow
 * query, holding the connection.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

// Connections closed behind the pool's back by breakConnection().
const broken = new WeakSet<Connection>();

/**
 * Closes a connection's handle behind the pool's back, as a database restart or a dropped
 * network connection would: its next query throws, and so does the pool's validation.
 */
export function breakConnection(conn: Connection): void {
  (conn.raw as { close(): void }).close();
  broken.add(conn);
}

/** Creates a fresh example database in a temporary directory. */
export async function openExampleDb(options: ExampleDbOptions = {}): Promise<ExampleDb> {
  const connectDelayMs = options.connectDelayMs ?? 0;
  const dir = mkdtempSync(join(tmpdir(), "edgepool-example-"));
  const path = join(dir, "example.db");
  const sqlite = sqliteFactory(path, { busyTimeoutMs: 5_000 });
  let openConnections = 0;

  let description: string;
  const setup = await sqlite.create(new AbortController().signal);
  try {
    setup.exec(SCHEMA);
    const { v } = setup.get<{ v: string }>("select sqlite_version() as v")!;
    description = `SQLite ${v} (${setup.driver}), a temporary file`;
  } finally {
    await sqlite.destroy!(setup, { id: 0, createdAt: 0, lastUsedAt: 0, uses: 0 });
  }

  const factory: Factory<Connection> = {
    async create(signal) {
      if (connectDelayMs > 0) await sleep(connectDelayMs, signal);
      const conn = await sqlite.create(signal);
      openConnections++;
      return conn;
    },
    validate: (conn, signal, info) => sqlite.validate!(conn, signal, info),
    reset: (conn, info) => sqlite.reset!(conn, info),
    isBroken: (conn, error) => sqlite.isBroken!(conn, error),
    destroy(conn, info) {
      openConnections--;
      // A broken connection's handle is closed already; closing it again would throw.
      if (!broken.has(conn)) return sqlite.destroy!(conn, info);
    },
  };

  return {
    description,
    path,
    factory,
    get openConnections() {
      return openConnections;
    },
    [Symbol.asyncDispose]() {
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}
