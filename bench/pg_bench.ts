/**
 * Real PostgreSQL throughput: `SELECT 1` from 200 concurrent workers through
 *
 * - edgepool + postgres.js (`postgresFactory`, `max: 10`), with `reset: "none"` (like the
 *   others, it sends nothing on release) and with the factory's default `reset: "rollback"`
 *   (a `ROLLBACK` per release, awaited), and with `reset: "rollback"` pipelined
 *   (`pipelineReset: true`: sent, not awaited). Each query leases a connection as `await using`
 *   does (acquire, query, then release in a `finally`), the same shape as the floor's;
 * - the same through `pool.use(fn)`. Only this contender calls `use()`: once `use()` has run
 *   several different functions in a process (as it did when every edgepool contender used it),
 *   V8 no longer specialises the call and the `await` of its result, which cost 3–6 µs of CPU
 *   per query and doubled p99 here;
 * - postgres.js's own pool (`max: 10`), and the same with `max_pipeline: 1`: postgres.js
 *   pipelines up to 100 queries on a busy connection, which a pool of exclusive leases cannot;
 * - the floor: the hand-written pool of `_floor.ts` over the same ten dedicated postgres.js
 *   connections edgepool holds, so what edgepool itself adds is the gap between the two;
 * - pg-pool (node-postgres, `max: 10`);
 * - a new postgres.js connection per query (time-bounded).
 *
 * A short run (`--short-s`, 5 s) per contender, repeated `--rounds` times (5) with the order
 * rotated, then sustained runs of `--sustained` queries (200 000) each for the main
 * contenders, repeated `--sustained-rounds` times (5), order rotated likewise (a single run of
 * each swung by 10–25 % with the machine's load). Reports queries per second, the p50/p99 latency of one query as a worker sees
 * it (waiting for a connection included), and the client process's CPU time per query (pool
 * and driver together; steadier than q/s on a shared machine).
 *
 * The script starts a throwaway cluster (`scripts/pg_cluster.ts`; `DATABASE_URL` uses yours
 * instead), then runs itself once per runtime (`--runtimes node,bun,deno`) against it, writes
 * `bench/results/pg.json` (or `--json`), and re-renders the charts and the README tables.
 *
 * ```sh
 * node_modules/.bin/node bench/pg_bench.ts [--runtimes node,bun,deno] [--short-s 5]
 *   [--rounds 5] [--sustained 200000] [--sustained-rounds 5] [--per-query-s 4] [--json path]
 *   [--no-render]
 * ```
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import PgPoolModule from "pg-pool";
import postgres from "postgres";
import { Pool } from "../mod.ts";
import { FloorPool } from "./_floor.ts";
import { postgresFactory } from "../src/factories/postgres.ts";
import { PG, type PgResults, type PgRun, type PgRuntimeResults, summarize } from "./_pg_results.ts";
import {
  count,
  flag,
  machine,
  option,
  progress,
  quantile,
  RUNTIME,
  type RuntimeName,
  runtimeVersion,
  table,
  writeJson,
} from "./_env.ts";

const WORKERS = 200;
const MAX = 10;
const WARM_S = 1;

interface Contender {
  name: string;
  /** Runs one `SELECT 1`. */
  query(): Promise<unknown>;
  close(): Promise<unknown>;
}

interface PgPoolLike {
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
}

const noop = () => {};

/** One `SELECT 1` on a leased connection, released as `await using` would release it. */
async function leased(pool: Pool<postgres.Sql>): Promise<unknown> {
  const lease = await pool.acquire();
  try {
    return await lease.value`select 1`;
  } finally {
    await lease.release();
  }
}

function contenders(url: string): Contender[] {
  const edge = new Pool(postgresFactory(postgres, url, { reset: "none" }), { max: MAX });
  const edgeRollback = new Pool(postgresFactory(postgres, url), { max: MAX });
  const edgePipelined = new Pool(postgresFactory(postgres, url, { pipelineReset: true }), {
    max: MAX,
  });
  const edgeForUse = new Pool(postgresFactory(postgres, url, { reset: "none" }), { max: MAX });
  const sql = postgres(url, { max: MAX, onnotice: noop });
  // `max_pipeline` is a postgres.js option its types leave out.
  const sqlNoPipeline = postgres(
    url,
    { max: MAX, max_pipeline: 1, onnotice: noop } as Parameters<typeof postgres>[1],
  );
  // The floor: the same ten dedicated connections as edgepool's, lent by the hand-written pool.
  const floorClients = Array.from({ length: MAX }, () => postgres(url, { max: 1, onnotice: noop }));
  const floor = new FloorPool(floorClients);
  const floorQuery = async () => {
    const c = await floor.acquire();
    try {
      return await c`select 1`;
    } finally {
      floor.release(c);
    }
  };
  const PgPool = PgPoolModule as unknown as new (options: Record<string, unknown>) => PgPoolLike;
  const pg = new PgPool({ connectionString: url, max: MAX });
  return [
    {
      name: PG.floor,
      query: floorQuery,
      close: () => Promise.all(floorClients.map((c) => c.end())),
    },
    {
      name: PG.edge,
      query: () => leased(edge),
      close: () => edge.close(),
    },
    {
      name: PG.edgeUse,
      query: () => edgeForUse.use((c) => c`select 1`),
      close: () => edgeForUse.close(),
    },
    {
      name: PG.edgeRollback,
      query: () => leased(edgeRollback),
      close: () => edgeRollback.close(),
    },
    {
      name: PG.edgePipelined,
      query: () => leased(edgePipelined),
      close: () => edgePipelined.close(),
    },
    { name: PG.postgres, query: () => sql`select 1`, close: () => sql.end() },
    {
      name: PG.postgresNoPipeline,
      query: () => sqlNoPipeline`select 1`,
      close: () => sqlNoPipeline.end(),
    },
    { name: PG.pgPool, query: () => pg.query("select 1"), close: () => pg.end() },
  ];
}

/** Runs `query` from `WORKERS` workers until `seconds` pass or `limit` queries are done. */
async function drive(
  query: () => Promise<unknown>,
  seconds: number,
  limit = Infinity,
): Promise<Omit<PgRun, "contender" | "phase" | "round">> {
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  let errors = 0;
  let lastError: unknown;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const deadline = started + seconds * 1000;
  let issued = 0;
  const worker = async () => {
    while (issued < limit && performance.now() < deadline) {
      issued++;
      const t0 = performance.now();
      try {
        await query();
      } catch (error) {
        errors++;
        lastError = error;
        continue;
      }
      if (n === latencies.length) {
        const grown = new Float64Array(n * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[n++] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (errors > 0) progress(`    ${errors} errors, last: ${String(lastError)}`);
  const done = latencies.subarray(0, n);
  return {
    queries: n,
    errors,
    seconds: Math.round(elapsed * 100) / 100,
    qps: Math.round(n / elapsed),
    p50Ms: Math.round(quantile(done, 0.5) * 1000) / 1000,
    p99Ms: Math.round(quantile(done, 0.99) * 1000) / 1000,
    cpuUs: n === 0 ? 0 : Math.round((cpu.user + cpu.system) / n * 10) / 10,
  };
}

/** Short runs per contender, and sustained runs per main contender: 5 each, since pg-pool's own
 * runs spread by ±20 % here and 3 left the medians at the mercy of one slow run. */
const ROUNDS = 5;
const SUSTAINED_ROUNDS = 5;

async function childMain(url: string): Promise<void> {
  const shortS = count("short-s", 5);
  const rounds = count("rounds", ROUNDS);
  const sustained = count("sustained", 200_000);
  const sustainedRounds = count("sustained-rounds", SUSTAINED_ROUNDS);
  const perQueryS = count("per-query-s", 4);
  const all = contenders(url);
  const runs: PgRun[] = [];
  const say = (r: PgRun) =>
    progress(
      `  ${RUNTIME} ${r.phase} ${r.round > 0 ? `#${r.round} ` : ""}${r.contender}: ` +
        `${r.qps} q/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, ${r.cpuUs} µs CPU/query ` +
        `(${r.queries} in ${r.seconds} s)`,
    );
  for (const c of all) await drive(c.query, WARM_S); // connections open, statements prepared
  // Rounds with the order rotated, so that load from elsewhere hits a round, not a contender.
  const rotated = async (
    phase: PgRun["phase"],
    list: Contender[],
    n: number,
    seconds: number,
    limit?: number,
  ) => {
    for (let round = 1; round <= n; round++) {
      for (let k = 0; k < list.length; k++) {
        const c = list[(k + round - 1) % list.length];
        const run: PgRun = {
          contender: c.name,
          phase,
          round,
          ...await drive(c.query, seconds, limit),
        };
        runs.push(run);
        say(run);
      }
    }
  };
  await rotated("short", all, rounds, shortS);
  const main: string[] = [PG.floor, PG.edge, PG.postgres, PG.pgPool];
  await rotated(
    "sustained",
    all.filter((x) => main.includes(x.name)),
    sustainedRounds,
    3_600,
    sustained,
  );
  await Promise.all(all.map((c) => c.close()));
  // The pool-less way: connect, query, disconnect, every time.
  const perQuery = async () => {
    const sql = postgres(url, { max: 1, onnotice: noop });
    try {
      await sql`select 1`;
    } finally {
      await sql.end();
    }
  };
  const run: PgRun = {
    contender: PG.perQuery,
    phase: "per-query",
    round: 0,
    ...await drive(perQuery, perQueryS),
  };
  runs.push(run);
  say(run);
  const out: PgRuntimeResults = { runtime: RUNTIME, version: runtimeVersion(), runs };
  console.log(JSON.stringify(out));
  process.exit(0);
}

function runChild(
  runtime: RuntimeName,
  url: string,
  passthrough: string[],
): Promise<PgRuntimeResults> {
  const script = fileURLToPath(import.meta.url);
  const bin = fileURLToPath(new URL(`../node_modules/.bin/${runtime}`, import.meta.url));
  const argv = runtime === "deno" ? ["run", "-A", script] : [script];
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [...argv, "--child", ...passthrough], {
      env: { ...process.env, EDGEPOOL_PG_URL: url },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => stdout += chunk);
    child.on("error", reject);
    child.on("exit", (code) => {
      const last = stdout.trim().split("\n").pop() ?? "";
      if (code === 0 && last.startsWith("{")) resolve(JSON.parse(last) as PgRuntimeResults);
      else {reject(
          new Error(`pg bench under ${runtime} exited with ${code}:\n${stdout.slice(-2000)}`),
        );}
    });
  });
}

async function parentMain(): Promise<void> {
  const { startCluster } = await import("../scripts/pg_cluster.ts");
  const runtimes = (option("runtimes", "node,bun,deno")).split(",") as RuntimeName[];
  const jsonPath = option(
    "json",
    fileURLToPath(new URL("./results/pg.json", import.meta.url)),
  );
  const passthrough: string[] = [];
  for (const name of ["short-s", "rounds", "sustained", "sustained-rounds", "per-query-s"]) {
    const value = option(name);
    if (value !== undefined) passthrough.push(`--${name}`, value);
  }
  const info = machine();
  progress(`pg bench: starting a PostgreSQL cluster (load ${info.load})`);
  const cluster = await startCluster({ settings: { max_connections: 300 } });
  let server = "";
  const results: PgRuntimeResults[] = [];
  try {
    server = String((await cluster.query<{ v: string }>("select version() as v"))[0].v);
    progress(`pg bench: ${server.split(",")[0]}`);
    for (const runtime of runtimes) {
      const t0 = performance.now();
      progress(`pg bench: ${runtime}`);
      const r = await runChild(runtime, cluster.url, passthrough);
      info.runtimes[runtime] = r.version;
      results.push(r);
      progress(`pg bench: ${runtime} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
  } finally {
    await cluster.stop();
  }
  const out: PgResults = {
    kind: "pg",
    machine: info,
    server: server.split(",")[0],
    workers: WORKERS,
    max: MAX,
    shortSeconds: count("short-s", 5),
    rounds: count("rounds", ROUNDS),
    sustainedQueries: count("sustained", 200_000),
    sustainedRounds: count("sustained-rounds", SUSTAINED_ROUNDS),
    perQuerySeconds: count("per-query-s", 4),
    runtimes: results,
  };
  for (const r of results) {
    console.log(`\n${r.runtime} ${r.version}: SELECT 1, ${WORKERS} workers, max ${MAX}\n`);
    console.log(table(
      ["contender", "phase", "q/s (median)", "q/s spread", "p50", "p99", "CPU/query", "errors"],
      summarize(r.runs).map((s) => [
        s.contender,
        s.phase,
        String(s.qps),
        s.qpsMin === s.qpsMax ? "" : `${s.qpsMin}–${s.qpsMax}`,
        `${s.p50Ms.toFixed(2)} ms`,
        `${s.p99Ms.toFixed(2)} ms`,
        s.cpuUs === undefined ? "–" : `${s.cpuUs.toFixed(1)} µs`,
        String(s.errors),
      ]),
    ));
  }
  writeJson(jsonPath, out);
  progress(`wrote ${jsonPath}`);
  if (!flag("no-render")) {
    const { render } = await import("./_report.ts");
    render();
  }
}

const url = process.env.EDGEPOOL_PG_URL;
if (flag("child")) {
  if (url === undefined) throw new Error("pg bench --child needs EDGEPOOL_PG_URL");
  await childMain(url);
} else {
  await parentMain();
}
