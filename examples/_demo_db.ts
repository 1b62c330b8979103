/**
 * The demo's database, picked by itself:
 *
 * 1. `DATABASE_URL` when set (a PostgreSQL server of yours: the demo creates no table there);
 * 2. else a throwaway local PostgreSQL started by `scripts/pg_cluster.ts`, when its binaries are
 *    found (Debian/Ubuntu `postgresql`, or `PG_BIN`);
 * 3. else the embedded SQLite of the other examples, with the costs of a network database
 *    simulated (a connection takes 25 ms to open), since opening a SQLite file costs next to
 *    nothing.
 *
 * `DEMO_DB=sqlite` or `DEMO_DB=postgres` forces a choice. Either way the pool gets a
 * {@linkcode Factory} of {@linkcode DemoConnection}s, the same interface over both drivers.
 *
 * @module
 */
import process from "node:process";
import type { Factory } from "../mod.ts";
import { openExampleDb, sleep } from "./_db.ts";

/** One connection, whatever the database. */
export interface DemoConnection {
  /** One request's query: it keeps the database busy about `ms`. */
  query(ms: number): Promise<void>;
}

/** The database the demo runs against. */
export interface DemoDb extends AsyncDisposable {
  /** What it is and where it came from, in one line. */
  readonly description: string;
  /** Makes, checks and closes connections. */
  readonly factory: Factory<DemoConnection>;
}

/** Wraps a driver's factory so that the pool holds {@linkcode DemoConnection}s. */
function adapt<C>(inner: Factory<C>, query: (conn: C, ms: number) => Promise<void>) {
  const raw = new WeakMap<DemoConnection, C>();
  const unwrap = (conn: DemoConnection) => raw.get(conn)!;
  const factory: Factory<DemoConnection> = {
    async create(signal) {
      const conn = await inner.create(signal);
      const wrapped: DemoConnection = { query: (ms) => query(conn, ms) };
      raw.set(wrapped, conn);
      return wrapped;
    },
    destroy: (conn, info) => inner.destroy?.(unwrap(conn), info),
    validate: inner.validate &&
      ((conn, signal, info) => inner.validate!(unwrap(conn), signal, info)),
    reset: inner.reset && ((conn, info) => inner.reset!(unwrap(conn), info)),
    isBroken: inner.isBroken && ((conn, error) => inner.isBroken!(unwrap(conn), error)),
  };
  return factory;
}

/** A URL without its password, to show. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.username ? `${u.username}@` : ""}${u.host}${u.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}

async function openPostgres(url: string, source: string, stop: () => Promise<void>) {
  // Loaded only here: the SQLite path needs neither the driver nor the factory.
  const { default: postgres } = await import("postgres");
  const { postgresFactory } = await import("../src/factories/postgres.ts");
  const factory = postgresFactory(postgres, url, {
    reset: "none", // the demo's queries run in autocommit: nothing to clean between uses
    connectTimeoutMs: 5_000,
  });
  // One connection to learn the server's version (and that it answers at all).
  const probe = await factory.create(AbortSignal.timeout(10_000));
  let version: string;
  try {
    const [row] = await probe.unsafe("show server_version");
    version = String(row.server_version);
  } finally {
    await factory.destroy?.(probe, { id: 0, createdAt: 0, lastUsedAt: 0, uses: 0 });
  }
  return {
    description: `PostgreSQL ${version}, ${source}`,
    factory: adapt(factory, async (sql, ms) => {
      // Some work, then some waiting, as a typical query: a scan, then I/O.
      await sql.unsafe(
        `select count(*) from generate_series(1, 2000), pg_sleep(${(ms / 1000).toFixed(4)})`,
      );
    }),
    [Symbol.asyncDispose]: stop,
  };
}

/** Picks and opens the demo's database; `say` reports the choice and why. */
export async function openDemoDb(say: (line: string) => void): Promise<DemoDb> {
  const forced = process.env.DEMO_DB;
  const url = process.env.DATABASE_URL;
  let why = "";
  if (forced !== "sqlite") {
    if (url) {
      return await openPostgres(url, `DATABASE_URL (${redact(url)})`, () => Promise.resolve());
    }
    say("looking for PostgreSQL: starting a throwaway local cluster…");
    try {
      const { startCluster } = await import("../scripts/pg_cluster.ts");
      const cluster = await startCluster();
      try {
        return await openPostgres(
          cluster.url,
          "a throwaway local cluster on 127.0.0.1 (scripts/pg_cluster.ts)",
          () => cluster.stop(),
        );
      } catch (error) {
        await cluster.stop();
        throw error;
      }
    } catch (error) {
      if (forced === "postgres") throw error;
      why = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    }
  }
  const db = await openExampleDb({ connectDelayMs: 25 });
  return {
    description: `${db.description}${why ? ` (no PostgreSQL: ${why})` : ""}; ` +
      "a network database's costs simulated: 25 ms to connect, queries wait",
    factory: adapt(db.factory, async (conn, ms) => {
      conn.get("select count(*) from greetings");
      await sleep(ms); // the query's time on a server
    }),
    [Symbol.asyncDispose]: () => db[Symbol.asyncDispose](),
  };
}
