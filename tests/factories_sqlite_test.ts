/**
 * sqliteFactory on the runtime's own SQLite driver (node:sqlite, and bun:sqlite on Bun).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Pool } from "../mod.ts";
import {
  type SqliteConnection,
  type SqliteDriverName,
  sqliteFactory,
} from "../src/factories/sqlite.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let dir: string;
let files = 0;
const dbFile = () => join(dir, `test-${++files}.db`);

/** The drivers this runtime has: node:sqlite everywhere but Node 20, bun:sqlite on Bun. */
async function availableDrivers(): Promise<SqliteDriverName[]> {
  const found: SqliteDriverName[] = [];
  for (const driver of ["node:sqlite", "bun:sqlite"] as const) {
    const f = sqliteFactory(":memory:", { driver });
    try {
      const conn = await f.create(new AbortController().signal);
      f.destroy!(conn, { id: 0, createdAt: 0, lastUsedAt: 0, uses: 0 });
      found.push(driver);
    } catch { /* not in this runtime */ }
  }
  return found;
}

describe("sqliteFactory()", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "edgepool-sqlite-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("validates its arguments", () => {
    assert.throws(() => sqliteFactory(""), TypeError);
    assert.throws(() => sqliteFactory(42 as never), TypeError);
    for (const v of [-1, 1.5, NaN, Infinity]) {
      assert.throws(() => sqliteFactory(":memory:", { busyTimeoutMs: v }), RangeError);
      assert.throws(() => sqliteFactory(":memory:", { statementCacheSize: v }), RangeError);
    }
    assert.throws(() => sqliteFactory(":memory:", { busyTimeoutMs: "1" as never }), TypeError);
    assert.throws(() => sqliteFactory(":memory:", { wal: 1 as never }), TypeError);
    assert.throws(() => sqliteFactory(":memory:", { driver: "sqlite3" as never }), TypeError);
  });

  for (const cacheSize of [64, 1, 0]) {
    it(`destroy() really closes the connection, its write lock and transaction too (statementCacheSize ${cacheSize})`, async () => {
      // bun:sqlite keeps a connection with unfinalized statements open until they are collected.
      for (const driver of await availableDrivers()) {
        const file = dbFile();
        const options = { driver, statementCacheSize: cacheSize, busyTimeoutMs: 100 };
        const pool = new Pool(sqliteFactory(file, options), { max: 1 });
        await pool.use((db) => db.exec("create table t (x)"));
        await pool.use((db) => {
          db.get("select count(*) as n from t");
          db.get("select max(x) as m from t"); // with a cache of 1, the first one is evicted
        });
        const lease = await pool.acquire();
        lease.value.exec("begin immediate");
        lease.value.run("insert into t values (?)", 1);
        await pool.close({ timeoutMs: 0 }); // destroys the leased connection
        await using other = new Pool(sqliteFactory(file, options), { max: 1 });
        const written = await other.use((db) => db.run("insert into t values (?)", 2));
        assert.equal(written.changes, 1, `${driver}: the write lock went with the connection`);
        const rows = await other.use((db) => db.all<{ x: number }>("select x from t"));
        assert.deepEqual(
          rows.map((r) => r.x),
          [2],
          `${driver}: the open transaction was rolled back`,
        );
      }
    });
  }

  it("binds true and false as 1 and 0 on every driver, positional and named", async () => {
    for (const driver of await availableDrivers()) {
      await using pool = new Pool(sqliteFactory(":memory:", { driver }), { max: 1 });
      const got = await pool.use((db) => {
        db.exec("create table flags (name text, on_ integer)");
        db.run("insert into flags values (?, ?)", "a", true);
        db.run("insert into flags values (:name, :on)", { name: "b", on: false });
        const typed = db.get<{ t: string; v: number }>("select typeof(?) as t, ? as v", true, 1);
        const rows = db.all<{ name: string; on_: number }>("select * from flags order by name");
        return { typed: [typed?.t, typed?.v], rows: rows.map((r) => [r.name, r.on_]) };
      });
      assert.deepEqual(got, { typed: ["integer", 1], rows: [["a", 1], ["b", 0]] }, driver);
    }
  });

  it("runs queries through the same interface on every available driver", async () => {
    const drivers = await availableDrivers();
    assert.ok(drivers.length > 0, "this runtime has no SQLite module");
    for (const driver of drivers) {
      await using pool = new Pool(sqliteFactory(dbFile(), { driver }), { max: 2 });
      await pool.use((db) => {
        assert.equal(db.driver, driver);
        db.exec("create table kv (k text primary key, v integer)");
        const r = db.run("insert into kv values (?, ?)", "a", 1);
        assert.deepEqual([Number(r.changes), Number(r.lastInsertRowid)], [1, 1]);
        db.run("insert into kv values (:k, :v)", { k: "b", v: 2 });
        assert.deepEqual(
          db.all<{ k: string; v: number }>("select k, v from kv order by k").map((r) => ({ ...r })),
          [{ k: "a", v: 1 }, { k: "b", v: 2 }],
        );
        assert.equal(db.get<{ v: number }>("select v from kv where k = ?", "b")?.v, 2);
        assert.equal(db.get("select v from kv where k = ?", "zz"), undefined);
      });
    }
  });

  it("releases with `await using` and reuses the connection", async () => {
    await using pool = new Pool(sqliteFactory(":memory:"), { max: 1 });
    let first: SqliteConnection;
    {
      await using lease = await pool.acquire();
      first = lease.value;
      first.exec("create table t (x)");
    }
    const same = await pool.use((db) => db);
    assert.equal(same, first);
    assert.equal(pool.stats().created, 1);
  });

  it("rolls back a transaction left open before reuse", async () => {
    const path = dbFile();
    await using pool = new Pool(sqliteFactory(path), { max: 1 });
    await pool.use((db) => db.exec("create table t (x integer)"));
    const lease = await pool.acquire();
    lease.value.exec("begin");
    lease.value.run("insert into t values (1)");
    assert.equal(lease.value.inTransaction, true);
    await lease.release(); // no commit
    await pool.use((db) => {
      assert.equal(db.inTransaction, false);
      assert.equal(db.get<{ n: number }>("select count(*) as n from t")?.n, 0);
    });
    assert.equal(pool.stats().created, 1);
  });

  it("serves many concurrent leases on one WAL database", async () => {
    const path = dbFile();
    await using pool = new Pool(sqliteFactory(path, { busyTimeoutMs: 2_000 }), { max: 8 });
    await pool.use((db) => {
      assert.equal(db.get<{ journal_mode: string }>("pragma journal_mode")?.journal_mode, "wal");
      db.exec("create table hits (n integer)");
    });
    // A writer holds a transaction across awaits while readers keep reading the last commit.
    const writer = await pool.acquire();
    writer.value.exec("begin immediate");
    writer.value.run("insert into hits values (-1)");
    const reads = await Promise.all(
      Array.from({ length: 20 }, () =>
        pool.use(async (db) => {
          await sleep(1);
          return db.get<{ n: number }>("select count(*) as n from hits")?.n;
        })),
    );
    assert.deepEqual(new Set(reads), new Set([0]));
    writer.value.exec("commit");
    await writer.release();
    // Many small writes from concurrent leases, interleaved at every await.
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        pool.use(async (db) => {
          await sleep(i % 3);
          db.run("insert into hits values (?)", i);
        })),
    );
    const total = await pool.use((db) => db.get<{ n: number }>("select count(*) as n from hits"));
    assert.equal(total?.n, 101);
    const s = pool.stats();
    assert.ok(s.created > 1 && s.created <= 8, `created ${s.created}`);
  });

  it("opens read-only when asked", async () => {
    const path = dbFile();
    {
      await using pool = new Pool(sqliteFactory(path), { max: 1 });
      await pool.use((db) => db.exec("create table t (x); insert into t values (1)"));
    }
    await using ro = new Pool(sqliteFactory(path, { readOnly: true }), { max: 1 });
    await pool_rejects(ro, (db) => db.exec("insert into t values (2)"));
    assert.equal(await ro.use((db) => db.get<{ n: number }>("select count(*) as n from t")?.n), 1);
  });

  it("fails create() for a file that is not a database, and isBroken() says so", async () => {
    const path = dbFile();
    writeFileSync(path, "this is not a database, just some text that is long enough".repeat(20));
    const f = sqliteFactory(path);
    const error = await Promise.resolve(f.create(new AbortController().signal))
      .then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof Error, "create should fail");
    const conn = {} as SqliteConnection;
    assert.equal(f.isBroken!(conn, error), true);
    assert.equal(f.isBroken!(conn, { errcode: 19 }), false); // a constraint violation
    assert.equal(f.isBroken!(conn, new Error("plain")), false);
  });

  it("says what is missing when the runtime lacks a driver", async () => {
    const drivers = await availableDrivers();
    const missing = (["node:sqlite", "bun:sqlite"] as const).find((d) => !drivers.includes(d));
    if (missing === undefined) return; // this runtime has both
    const f = sqliteFactory(":memory:", { driver: missing });
    await assert.rejects(
      Promise.resolve(f.create(new AbortController().signal)),
      new RegExp(`${missing} is not available in this runtime`),
    );
  });
});

async function pool_rejects(
  pool: Pool<SqliteConnection>,
  fn: (db: SqliteConnection) => unknown,
): Promise<void> {
  await assert.rejects(pool.use(fn), /readonly|read-only|read only/i);
}
