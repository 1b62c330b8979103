/**
 * Several processes (Deno, Node, Bun), each a Pool of postgresFactory connections with max 10,
 * through one PgBouncer in transaction mode with 4 server connections: with postgres.js
 * `prepare: false`, every request is served while the server never sees more than PgBouncer's
 * pool. And why `prepare: false`: a statement prepared on one server connection is missing on
 * another, which a transaction cannot recover from. Starts its own cluster and PgBouncer (scripts/
 * pg_cluster.ts) and always stops them; fails, not skips, when pgbouncer is missing.
 * (tests/integration/pgbouncer_test.ts covers one process; this file, many.)
 */
import assert from "node:assert/strict";
import process from "node:process";
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
import {
  killAll,
  sampler,
  startWorker,
  type Worker,
  type WorkerRuntime,
} from "../fixtures/budget_spawn.ts";

const POOL_SIZE = 4;
const RUNTIMES: WorkerRuntime[] = ["deno", "deno", "node", "bun"];

let cluster: Cluster;
let bouncer: PgBouncer;
let runs = 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Server backends of the test role: PgBouncer's connections to the server. */
async function serverConnections(): Promise<number> {
  const [{ n }] = await cluster.query<{ n: number }>(
    "select count(*)::int as n from pg_stat_activity where usename = $1",
    [cluster.user],
  );
  return n;
}

interface Done {
  name: string;
  runtime: string;
  served: number;
  failed: number;
  firstError?: string;
}

async function runLoad(prepare: boolean, durationMs: number): Promise<Done[]> {
  const app = `edgepool-bouncer-${process.pid}-${++runs}`;
  const startAt = Date.now() + 3_000;
  const workers: Worker[] = RUNTIMES.map((runtime, i) =>
    startWorker(runtime, {
      name: `w${i}`,
      mode: "load",
      url: `${bouncer.url}?application_name=${app}`,
      prepare,
      max: 10,
      loops: 8,
      sleepMs: 2,
      startAt,
      durationMs,
    })
  );
  try {
    return await Promise.all(
      workers.map((w) => w.next("done", startAt - Date.now() + durationMs + 10_000)),
    ) as unknown as Done[];
  } finally {
    await killAll(workers);
  }
}

describe("edgepool in front of PgBouncer (transaction mode), from several processes", () => {
  before(async () => {
    cluster = await startCluster();
    bouncer = await startPgBouncer(cluster, { poolMode: "transaction", poolSize: POOL_SIZE });
  });
  after(async () => {
    await bouncer?.stop();
    await cluster?.stop();
  });

  it("serves every request over PgBouncer's few server connections with prepare: false", async () => {
    const servers = sampler(50, serverConnections);
    try {
      const done = await runLoad(false, 5_000);
      await servers.stop();
      const most = Math.max(...servers.samples.map((s) => s.value));
      const served = done.reduce((n, d) => n + d.served, 0);
      const failed = done.reduce((n, d) => n + d.failed, 0);
      console.log(
        `pgbouncer: ${RUNTIMES.length} processes × max 10 through pool_size ${POOL_SIZE}: ` +
          `requests served ${served}, failed ${failed}, server connections at most ${most}`,
      );
      assert.equal(failed, 0, done.find((d) => d.failed > 0)?.firstError);
      for (const d of done) assert.ok(d.served > 0, `${d.name} (${d.runtime}) served nothing`);
      assert.ok(most <= POOL_SIZE, `${most} server connections for a PgBouncer pool of 4`);
    } finally {
      await servers.stop();
    }
  });

  it("loses a prepared statement inside a transaction without prepare: false", async () => {
    // Two server connections, X and Y. The pooled client prepares a statement on Y while X is
    // busy, then runs a transaction while Y is busy: PgBouncer gives it X, which never saw the
    // statement. postgres.js re-prepares such a statement outside a transaction, not inside.
    const small = await startPgBouncer(cluster, { poolMode: "transaction", poolSize: 2 });
    const outcome: Record<string, string> = {};
    try {
      for (const prepare of [true, false]) {
        const pool = new Pool(postgresFactory(postgres, { ...options(small.url), prepare }), {
          max: 1,
        });
        const b = postgres(small.url, { max: 1, onnotice: () => {} });
        const c = postgres(small.url, { max: 1, onnotice: () => {} });
        try {
          const holdX = b.begin((tx) => tx`select pg_sleep(0.4)`);
          await sleep(100);
          await pool.use((sql) => sql`select ${1}::int as x`); // on Y, the only free one
          const holdY = c.begin((tx) => tx`select pg_sleep(0.8)`);
          await holdX;
          outcome[`prepare: ${prepare}`] = await pool.use((sql) =>
            sql.begin((tx) => tx`select ${2}::int as x`)
          ).then(() => "ok", (e: Error) => e.message);
          await holdY;
        } finally {
          await pool.close({ timeoutMs: 1_000 });
          await b.end();
          await c.end();
        }
      }
    } finally {
      await small.stop();
    }
    console.log(`pgbouncer: a transaction after a server switch: ${JSON.stringify(outcome)}`);
    assert.match(outcome["prepare: true"], /prepared statement ".*" does not exist/);
    assert.equal(outcome["prepare: false"], "ok");
  });
});

/** postgres.js options for a URL (the options form of postgresFactory's connection). */
function options(url: string) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
    onnotice: () => {},
  };
}
