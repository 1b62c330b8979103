/**
 * postgresFactory through PgBouncer in transaction mode (prepare: false), against a cluster and
 * a PgBouncer this file starts and always stops. Fails, not skips, when pgbouncer is missing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import postgres from "postgres";
import { Pool } from "../../mod.ts";
import { postgresFactory } from "../../src/factories/postgres.ts";
import {
  type Cluster,
  type PgBouncer,
  startCluster,
  startPgBouncer,
} from "../../scripts/pg_cluster.ts";
import { closePool } from "./_net.ts";

let cluster: Cluster;
let bouncer: PgBouncer;

/** Server backends of the test role (PgBouncer's own connections to the server). */
async function serverConnections(): Promise<number> {
  const [{ n }] = await cluster.query<{ n: number }>(
    "select count(*)::int as n from pg_stat_activity where usename = $1",
    [cluster.user],
  );
  return n;
}

/** Server backends of the test role holding a transaction open. */
async function idleInTransaction(): Promise<number> {
  const [{ n }] = await cluster.query<{ n: number }>(
    "select count(*)::int as n from pg_stat_activity where usename = $1 and state like 'idle in%'",
    [cluster.user],
  );
  return n;
}

describe("postgresFactory through PgBouncer in transaction mode", () => {
  before(async () => {
    cluster = await startCluster();
    await cluster.query("create table items (id int primary key)");
    await cluster.query("grant all on items to edgepool");
    bouncer = await startPgBouncer(cluster, { poolMode: "transaction", poolSize: 2 });
  });
  after(async () => {
    await bouncer?.stop();
    await cluster?.stop();
  });

  it("runs parameterised queries without prepared statements", async () => {
    const pool = new Pool(postgresFactory(postgres, { ...urlOptions(), prepare: false }), {
      max: 2,
    });
    try {
      for (let i = 0; i < 5; i++) {
        const [{ x }] = await pool.use((sql) => sql`select ${i}::int + 1 as x`);
        assert.equal(x, i + 1);
      }
    } finally {
      await closePool(pool);
    }
  });

  it("multiplexes many pooled clients over few server connections", async () => {
    const pool = new Pool(postgresFactory(postgres, `${bouncer.url}?prepare=false`), {
      max: 8,
    });
    let most = 0;
    try {
      await Promise.all(Array.from({ length: 40 }, (_, i) =>
        pool.use(async (sql) => {
          await sql.unsafe(`select pg_sleep(0.002), ${i}`);
          if (i % 8 === 0) most = Math.max(most, await serverConnections());
        })));
      assert.ok(pool.stats().created > 2, `created ${pool.stats().created}`);
      assert.ok(most <= 2, `${most} server connections for a PgBouncer pool of 2`);
    } finally {
      await closePool(pool);
    }
  });

  it("rolls back a transaction left open, freeing the server connection", async () => {
    const pool = new Pool(
      postgresFactory(postgres, `${bouncer.url}?prepare=false`, { reset: "rollback" }),
      { max: 3 },
    );
    try {
      const lease = await pool.acquire();
      await lease.value.unsafe("begin");
      await lease.value.unsafe("insert into items values (1)");
      assert.equal(await idleInTransaction(), 1);
      await lease.release(); // no commit: reset() rolls back, PgBouncer gets the server back
      assert.equal(await idleInTransaction(), 0);
      const counts = await Promise.all(
        [1, 2, 3].map(() =>
          pool.use(async (sql) => (await sql.unsafe("select count(*)::int as n from items"))[0].n)
        ),
      );
      assert.deepEqual(counts, [0, 0, 0]);
    } finally {
      await closePool(pool);
    }
  });
});

/** postgres.js options for the PgBouncer URL (the options form of the connection argument). */
function urlOptions() {
  const u = new URL(bouncer.url);
  return {
    host: u.hostname,
    port: Number(u.port),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
  };
}
