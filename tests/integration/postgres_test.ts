/**
 * postgresFactory against a real PostgreSQL that this file starts (scripts/pg_cluster.ts) and
 * always stops.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";
import postgres from "postgres";
import { AcquireTimeoutError, Pool, PoolError, type PoolEvent } from "../../mod.ts";
import {
  isConnectionError,
  postgresFactory,
  type PostgresFactoryOptions,
} from "../../src/factories/postgres.ts";
import { type Cluster, freePort, startCluster } from "../../scripts/pg_cluster.ts";
import { closePool, peakDuring, sleep, startProxy, waitFor } from "./_net.ts";

type Sql = ReturnType<typeof postgres>;

let cluster: Cluster;
let apps = 0;

/** A unique application_name, so each test counts only its own server connections. */
function appName(): string {
  return `edgepool-test-${process.pid}-${++apps}`;
}

function factory(app: string, options?: PostgresFactoryOptions<Sql>, url = cluster.url) {
  return postgresFactory(postgres, `${url}?application_name=${app}`, options);
}

async function pidOf(sql: Sql): Promise<number> {
  const [row] = await sql`select pg_backend_pid() as pid`;
  return row.pid;
}

/** The server's view of a backend: "idle", "idle in transaction", ... */
async function stateOf(pid: number): Promise<string> {
  const [row] = await cluster.query<{ state: string }>(
    "select state from pg_stat_activity where pid = $1",
    [pid],
  );
  return row.state;
}

/** Leaves a transaction open on `sql`: an insert, not committed. */
async function leaveTransactionOpen(sql: Sql): Promise<void> {
  await sql`begin`;
  await sql`insert into items values (1)`;
}

/** Leaves a transaction aborted by an error on `sql`, the backend `pid`. */
async function leaveTransactionAborted(sql: Sql, pid: number): Promise<void> {
  await sql`begin`;
  await assert.rejects(sql`select 1/0`);
  assert.equal(await stateOf(pid), "idle in transaction (aborted)");
}

describe("postgresFactory with a running server", () => {
  before(async () => {
    cluster = await startCluster();
    await cluster.query("create table items (id int primary key)");
    await cluster.query("grant all on items to edgepool");
  });
  after(async () => {
    await cluster?.stop();
  });

  it("acquires a dedicated connection, queries it and reuses it after release", async () => {
    const app = appName();
    const pool = new Pool(factory(app), { max: 2 });
    try {
      const lease = await pool.acquire();
      const pid = await pidOf(lease.value);
      assert.deepEqual(await cluster.backendPids(app), [pid]);
      await lease.release();
      const again = await pool.acquire();
      assert.equal(await pidOf(again.value), pid);
      await again.release();
      assert.equal(pool.stats().created, 1);
    } finally {
      await closePool(pool);
    }
    await waitFor("the connection to close", async () => (await cluster.connections(app)) === 0);
  });

  it("releases the lease at the end of an `await using` scope", async () => {
    const pool = new Pool(factory(appName()), { max: 1 });
    try {
      {
        await using conn = await pool.acquire();
        const [row] = await conn.value`select 41 + 1 as answer`;
        assert.equal(row.answer, 42);
        assert.equal(pool.stats().active, 1);
      }
      assert.deepEqual([pool.stats().active, pool.stats().idle], [0, 1]);
    } finally {
      await closePool(pool);
    }
  });

  it("use() returns the callback's result and releases the connection", async () => {
    const pool = new Pool(factory(appName()), { max: 1 });
    try {
      const rows = await pool.use((sql) => sql`select ${"edge"}::text || 'pool' as name`);
      assert.equal(rows[0].name, "edgepool");
      // A query error is not a connection error: the connection is kept.
      await assert.rejects(pool.use((sql) => sql`select 1/0`), { code: "22012" });
      assert.deepEqual([pool.stats().idle, pool.stats().destroyed], [1, 0]);
    } finally {
      await closePool(pool);
    }
  });

  it("never opens more than max connections, counted by the server", async () => {
    const app = appName();
    const pool = new Pool(factory(app), { max: 4 });
    let most = 0;
    try {
      const { value: results, peak } = await peakDuring(
        () => cluster.connections(app),
        () =>
          Promise.all(Array.from(
            { length: 60 },
            (_, i) =>
              pool.use(async (sql) => (await sql`select pg_sleep(0.003), ${i}::int as i`)[0].i),
          )),
      );
      most = peak;
      assert.deepEqual(results, Array.from({ length: 60 }, (_, i) => i));
    } finally {
      await closePool(pool);
    }
    assert.ok(most >= 2, `expected concurrency, saw ${most} connections`);
    assert.ok(most <= 4, `the server saw ${most} connections for max 4`);
    assert.equal(pool.stats().created, 4);
  });

  it("with pipelineReset, the rollback runs before the next lease's queries", async () => {
    // The ROLLBACK is pipelined: release() returns before it is answered, and the next lease's
    // queries run after it on the same connection.
    const pool = new Pool(factory(appName(), { pipelineReset: true }), { max: 1 });
    try {
      const lease = await pool.acquire();
      const pid = await pidOf(lease.value);
      await leaveTransactionOpen(lease.value);
      assert.equal(await stateOf(pid), "idle in transaction");
      await lease.release(); // no commit
      await pool.use(async (sql) => {
        assert.equal(await pidOf(sql), pid);
        const [{ n }] = await sql`select count(*)::int as n from items`;
        assert.equal(n, 0);
      });
      assert.equal(await stateOf(pid), "idle");
      // A transaction failed by an error is rolled back too, and the next user's own
      // transaction (postgres.js reserves the connection for it) starts after the rollback.
      const failed = await pool.acquire();
      await leaveTransactionAborted(failed.value, pid);
      await failed.release();
      const [{ id }] = await pool.use((sql) =>
        sql.begin((tx) => tx`insert into items values (2) returning id`)
      );
      assert.equal(id, 2);
      assert.equal(await stateOf(pid), "idle");
      assert.equal(pool.stats().created, 1);
      const rows = await cluster.query<{ id: number }>("select id from items order by id");
      assert.deepEqual(rows.map((r) => r.id), [2]);
      await cluster.query("delete from items");
    } finally {
      await closePool(pool);
    }
  });

  it("rolls back a transaction left open before release() resolves", async () => {
    const pool = new Pool(factory(appName()), { max: 1 });
    try {
      const lease = await pool.acquire();
      const pid = await pidOf(lease.value);
      await leaveTransactionOpen(lease.value);
      await lease.release(); // no commit
      assert.equal(await stateOf(pid), "idle");
      const failed = await pool.acquire();
      await leaveTransactionAborted(failed.value, pid);
      await failed.release();
      assert.equal(await stateOf(pid), "idle");
      assert.equal(pool.stats().created, 1);
      const [{ n }] = await cluster.query<{ n: number }>("select count(*)::int as n from items");
      assert.equal(n, 0);
    } finally {
      await closePool(pool);
    }
  });

  it('reset: "discard" clears session state and keeps prepared statements working', async () => {
    const pool = new Pool(factory(appName(), { reset: "discard" }), { max: 1 });
    try {
      await pool.use(async (sql) => {
        await sql`set statement_timeout = 4321`;
        await sql`create temp table scratch (x int)`;
        assert.equal((await sql`select ${7}::int as x`)[0].x, 7); // a prepared statement
      });
      await pool.use(async (sql) => {
        const [{ statement_timeout }] = await sql`show statement_timeout`;
        assert.equal(statement_timeout, "0");
        const [{ t }] = await sql`select to_regclass('pg_temp.scratch')::text as t`;
        assert.equal(t, null);
        assert.equal((await sql`select ${8}::int as x`)[0].x, 8);
      });
      assert.equal(pool.stats().created, 1);
    } finally {
      await closePool(pool);
    }
  });

  it("never hands out a connection killed while idle, and refills by itself", async () => {
    const app = appName();
    const pool: Pool<Sql> = new Pool(
      factory(app, { onDisconnect: (client) => void pool.evict((c) => c === client) }),
      { min: 3, max: 3 },
    );
    try {
      await pool.ready({ timeoutMs: 5_000 });
      const killed = await cluster.backendPids(app);
      assert.equal(killed.length, 3);
      assert.equal(await cluster.terminateBackends(app), 3);
      await waitFor("three new connections", async () => {
        const pids = await cluster.backendPids(app);
        return pids.length === 3 && pids.every((pid) => !killed.includes(pid)) &&
          pool.stats().idle === 3;
      });
      const pids = await Promise.all(
        [1, 2, 3].map(() => pool.acquire().then(async (l) => [await pidOf(l.value), l] as const)),
      );
      for (const [pid, lease] of pids) {
        assert.ok(!killed.includes(pid));
        await lease.release();
      }
      assert.equal(pool.stats().destroyed, 3);
    } finally {
      await closePool(pool);
    }
  });

  it("validates on acquire: a killed idle connection is replaced, not handed out", async () => {
    const app = appName();
    const pool = new Pool(factory(app), { max: 2, validateBypassMs: 0 });
    try {
      const lease = await pool.acquire();
      const killed = await pidOf(lease.value);
      await lease.release();
      await cluster.terminateBackends([killed]);
      await sleep(20); // let the client see the close
      for (let i = 0; i < 3; i++) {
        const pid = await pool.use((sql) => pidOf(sql));
        assert.notEqual(pid, killed);
      }
      assert.equal(pool.stats().destroyed, 1);
      assert.ok(pool.stats().validationFailures >= 1);
    } finally {
      await closePool(pool);
    }
  });

  it("gives the user of a killed leased connection the driver's error and recovers", async () => {
    const app = appName();
    const events: PoolEvent[] = [];
    const pool = new Pool(factory(app), { max: 1, onEvent: (e) => events.push(e) });
    try {
      const error = await pool.use(async (sql) => {
        await cluster.terminateBackends([await pidOf(sql)]);
        await sleep(20);
        return await sql`select 1`.then(() => undefined, (e: unknown) => e);
      });
      assert.ok(error instanceof Error, "the query should have failed");
      assert.ok(isConnectionError(error), `not a connection error: ${inspect(error)}`);
      // Thrown from use(): isBroken() destroys the connection.
      await assert.rejects(
        pool.use(async (sql) => {
          await cluster.terminateBackends([await pidOf(sql)]);
          await sleep(20);
          await sql`select 1`;
        }),
        (e: unknown) => isConnectionError(e),
      );
      // Both were destroyed: the first by reset() on release, the second by isBroken().
      assert.equal(
        events.filter((e) => e.type === "destroy" && e.reason === "error").length,
        2,
      );
      assert.equal(await pool.use(async (sql) => (await sql`select 2 as two`)[0].two), 2);
      await waitFor("one connection", async () => (await cluster.connections(app)) === 1);
    } finally {
      await closePool(pool);
    }
  });

  it("cuts off a validation that never answers and replaces the connection", async () => {
    const proxy = await startProxy(cluster.port);
    const app = appName();
    const url = cluster.url.replace(`:${cluster.port}/`, `:${proxy.port}/`);
    const pool = new Pool(factory(app, undefined, url), {
      max: 1,
      validateBypassMs: 0,
      validateTimeoutMs: 200,
      destroyTimeoutMs: 500,
    });
    try {
      const first = await pool.use((sql) => pidOf(sql));
      proxy.freeze(); // the connection stays open but nothing gets through
      const started = Date.now();
      const second = await pool.use((sql) => pidOf(sql), { timeoutMs: 3_000 });
      const tookMs = Date.now() - started;
      assert.notEqual(second, first);
      assert.ok(tookMs >= 190 && tookMs < 2_000, `took ${tookMs} ms`);
      const s = pool.stats();
      assert.deepEqual([s.validationFailures, s.destroyed, s.created], [1, 1, 2]);
    } finally {
      await closePool(pool);
      await proxy.close();
    }
  });

  it("with pipelineReset, a rollback that never answers ends the connection: an error, not a hang", async () => {
    const proxy = await startProxy(cluster.port);
    const app = appName();
    const url = cluster.url.replace(`:${cluster.port}/`, `:${proxy.port}/`);
    const pool = new Pool(
      factory(app, { pipelineReset: true, pipelinedResetTimeoutMs: 300 }, url),
      { max: 1, destroyTimeoutMs: 500 },
    );
    try {
      const first = await pool.acquire();
      const conn = first.value;
      const pid = await pidOf(conn);
      proxy.freeze(); // the connection stays open but nothing gets through
      const started = Date.now();
      await first.release(); // the ROLLBACK goes out and is never answered
      const second = await pool.acquire({ timeoutMs: 3_000 });
      assert.equal(second.value, conn); // handed on at once: no round trip on release
      const error = await second.value`select 1`.then(() => undefined, (e: unknown) => e);
      const tookMs = Date.now() - started;
      assert.ok(isConnectionError(error), `not a connection error: ${inspect(error)}`);
      assert.ok(tookMs >= 290 && tookMs < 2_000, `took ${tookMs} ms`);
      await second.release(); // the connection is dead: destroyed, not reused
      assert.notEqual(await pool.use((sql) => pidOf(sql), { timeoutMs: 3_000 }), pid);
      const s = pool.stats();
      assert.deepEqual([s.created, s.destroyed], [2, 1]);
    } finally {
      await closePool(pool);
      await proxy.close();
    }
  });

  it("never shows the password in errors, events or stats", async () => {
    const secret = cluster.password;
    const wrong = `wrong-${secret.slice(3, 11)}-pw`;
    const texts: string[] = [];
    const collect = (value: unknown) => {
      texts.push(inspect(value, { depth: 6, showHidden: true }));
      if (value instanceof Error) texts.push(String(value), value.stack ?? "");
    };
    const urls = [
      // wrong password: the server refuses
      cluster.url.replace(`:${secret}@`, `:${wrong}@`),
      // a URL the driver cannot parse: its message would quote the URL
      cluster.url.replace(`:${cluster.port}/`, ":99999/"),
      // nobody listening
      cluster.url.replace(`:${cluster.port}/`, `:${await freePort()}/`),
    ];
    for (const url of urls) {
      const pool = new Pool(
        postgresFactory(postgres, url, { connectTimeoutMs: 1_000 }),
        { min: 1, max: 1, onEvent: collect },
      );
      try {
        await pool.ready({ timeoutMs: 300 }).catch(collect);
        await pool.acquire({ timeoutMs: 200 }).catch(collect);
        collect(pool.stats());
      } finally {
        await pool.close({ timeoutMs: 1_000 }); // creates fail before startup ends
      }
    }
    const all = texts.join("\n");
    // The failures did show up, redacted where the driver quoted the URL.
    assert.match(all, /28P01|password authentication failed/);
    assert.match(all, /Invalid URL/);
    assert.match(all, /ECONNREFUSED/);
    for (const s of [secret, wrong, encodeURIComponent(secret)]) {
      assert.equal(all.includes(s), false, `found a password in:\n${all.slice(0, 2_000)}`);
    }
  });
});

describe('postgresFactory when reset: "discard" fails on the server', () => {
  // DISCARD TEMP locks every temporary table it drops; more tables than the server's lock table
  // holds make it fail with "out of shared memory", after RESET ALL already ran. A small lock
  // table keeps the number of tables low.
  let tables = 0;
  before(async () => {
    cluster = await startCluster({
      settings: {
        max_locks_per_transaction: 10,
        max_connections: 20,
        max_worker_processes: 2,
        max_wal_senders: 0,
        autovacuum_max_workers: 1,
      },
    });
    const [{ slots }] = await cluster.query<{ slots: number }>(
      `select current_setting('max_locks_per_transaction')::int * (
         current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int
         + current_setting('max_worker_processes')::int + current_setting('max_wal_senders')::int
         + current_setting('autovacuum_max_workers')::int + 1) as slots`,
    );
    tables = 3 * slots; // the lock table may borrow some spare shared memory: well past it
    await cluster.query("create schema elsewhere authorization edgepool");
    await cluster.query("create table public.items (who text)");
    await cluster.query("create table elsewhere.items (who text)");
    await cluster.query("grant all on public.items, elsewhere.items to edgepool");
  });
  after(async () => {
    await cluster?.stop();
  });

  /** Leaves `tables` temporary tables and `search_path = elsewhere` on `sql`. */
  async function dirty(sql: Sql): Promise<void> {
    await sql.unsafe(
      `do $$ begin for i in 1..${tables} loop
         execute format('create temp table t%s (a int)', i); commit;
       end loop; end $$`,
    );
    await sql`set search_path = elsewhere`;
  }

  for (const pipelineReset of [false, true]) {
    it(`never runs the next lease's queries in the uncleaned session (pipelineReset ${pipelineReset})`, async () => {
      const events: PoolEvent[] = [];
      const app = appName();
      const pool = new Pool(factory(app, { reset: "discard", pipelineReset }), {
        max: 1,
        onEvent: (e) => void events.push(e),
      });
      try {
        const first = await pool.acquire();
        const next = pool.acquire(); // queued: gets the connection on release
        await dirty(first.value);
        await first.release();
        const second = await next;
        const insert = second.value`insert into items values ('next lease')
          returning current_setting('search_path') as path`;
        if (pipelineReset) {
          // Sent behind the failed reset: the server refuses it (the reset's transaction is
          // aborted), or the factory has already ended the connection.
          await assert.rejects(insert, (error: { code?: string }) => {
            assert.ok(
              error.code === "25P02" || isConnectionError(error),
              `refused or cut off, got ${inspect(error)}`,
            );
            return true;
          });
        } else {
          // Awaited: the failed reset destroyed the connection; the next lease has a new one.
          const [{ path }] = await insert;
          assert.doesNotMatch(path, /elsewhere/);
        }
        await second.release();
        const rows = await cluster.query<{ who: string }>("select who from elsewhere.items");
        assert.deepEqual(rows, [], "nothing written through the uncleaned search_path");
        // Replaced: the pool's next connection is a clean new one.
        const path = await pool.use(async (sql) => (await sql`show search_path`)[0].search_path);
        assert.doesNotMatch(path, /elsewhere/);
        const s = pool.stats();
        assert.equal(s.created, 2);
        assert.equal(s.destroyed, 1);
        assert.ok(events.some((e) => e.type === "destroy" && e.reason === "error"));
      } finally {
        await closePool(pool);
        await cluster.query("delete from public.items");
        await dropOrphanedTempTables(app);
      }
    });
  }

  /**
   * The backend whose reset failed could not drop its temporary tables when it exited either
   * (the same lock table): drop them one per transaction, or the next backend to use that
   * temporary schema fails the same way clearing it.
   */
  async function dropOrphanedTempTables(app: string): Promise<void> {
    await waitFor("the backends to exit", async () => (await cluster.connections(app)) === 0);
    await cluster.query(
      `do $$ declare r record; begin
         for r in select c.oid::regclass as t from pg_class c
           where c.relpersistence = 't' and c.relkind = 'r' loop
           execute format('drop table if exists %s', r.t); commit;
         end loop; end $$`,
    );
  }
});

describe("postgresFactory when the server goes away", () => {
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  it("fails acquires within their deadline during a restart and recovers by itself", async () => {
    const app = appName();
    const pool = new Pool(factory(app, { connectTimeoutMs: 1_000 }), {
      max: 4,
      acquireTimeoutMs: 1_000,
      validateBypassMs: 0,
    });
    let ok = 0;
    let failed = 0;
    let running = true;
    const load = Promise.all([1, 2, 3, 4, 5, 6].map(async () => {
      while (running) {
        try {
          await pool.use((sql) => sql`select pg_sleep(0.002)`, { timeoutMs: 300 });
          ok++;
        } catch {
          failed++;
          await sleep(10);
        }
      }
    }));
    try {
      await waitFor("some load", () => ok > 20);
      await cluster.stopServer();
      const createErrorsBefore = pool.stats().createErrors;
      const started = Date.now();
      const error = await pool.acquire({ timeoutMs: 400 }).then(
        (lease) => (lease.release(), undefined),
        (e: unknown) => e,
      );
      const tookMs = Date.now() - started;
      assert.ok(error instanceof AcquireTimeoutError, `got ${inspect(error)}`);
      assert.ok(tookMs < 1_000, `the acquire took ${tookMs} ms`);
      assert.ok(isConnectionError(error.cause), `cause: ${inspect(error.cause)}`);
      await sleep(600);
      // Creates back off while the server is down: a handful per second, not a storm.
      const attempts = pool.stats().createErrors - createErrorsBefore;
      assert.ok(attempts < 40, `${attempts} create attempts in about a second`);
      const okBefore = ok;
      await cluster.startServer();
      await waitFor("queries to succeed again", () => ok > okBefore + 20, 10_000);
      assert.ok(failed > 0);
      assert.ok(pool.stats().total <= 4);
    } finally {
      running = false;
      await load;
      await closePool(pool);
    }
    await waitFor("no connections left", async () => (await cluster.connections(app)) === 0);
  });

  it("rejects ready() and acquire() clearly when the server is down from the start", async () => {
    await cluster.stopServer();
    try {
      const pool = new Pool(factory(appName(), { connectTimeoutMs: 1_000 }), { min: 1 });
      const started = Date.now();
      await assert.rejects(pool.ready({ timeoutMs: 300 }), (e: unknown) => {
        assert.ok(e instanceof PoolError);
        assert.match(e.message, /not ready after 300 ms.*ECONNREFUSED/);
        assert.ok(isConnectionError(e.cause));
        return true;
      });
      await assert.rejects(pool.acquire({ timeoutMs: 200 }), (e: unknown) => {
        assert.ok(e instanceof AcquireTimeoutError);
        assert.equal((e.cause as { code?: string }).code, "ECONNREFUSED");
        return true;
      });
      await pool.close({ timeoutMs: 1_000 });
      assert.ok(Date.now() - started < 2_000);
    } finally {
      await cluster.startServer();
    }
  });
});
