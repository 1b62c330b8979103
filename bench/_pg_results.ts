/**
 * The shape of the PostgreSQL bench's results and how they are summarized, shared by
 * `pg_bench.ts` (which measures) and `_report.ts` (which renders).
 *
 * @module
 */

import type { Machine, RuntimeName } from "./_env.ts";
import { median } from "./_env.ts";

/** One timed run of one contender. */
export interface PgRun {
  contender: string;
  phase: "short" | "sustained" | "per-query";
  round: number;
  queries: number;
  errors: number;
  seconds: number;
  qps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time of the client process per query, µs: what the pool and driver cost, less noisy than q/s. */
  cpuUs: number;
}

/** One runtime's runs. */
export interface PgRuntimeResults {
  runtime: RuntimeName;
  version: string;
  runs: PgRun[];
}

/** What the bench writes. */
export interface PgResults {
  kind: "pg";
  machine: Machine;
  server: string;
  workers: number;
  max: number;
  shortSeconds: number;
  rounds: number;
  sustainedQueries: number;
  /** Sustained runs per contender (absent in results from before there were several: 1). */
  sustainedRounds?: number;
  perQuerySeconds: number;
  runtimes: PgRuntimeResults[];
}

/** The names the report looks up. */
export const PG = {
  edge: "edgepool + postgres.js (reset: none)",
  edgeUse: "edgepool + postgres.js (reset: none), through pool.use()",
  edgeRollback: "edgepool + postgres.js (default reset: rollback)",
  edgePipelined: "edgepool + postgres.js (reset: rollback, pipelineReset)",
  postgres: "postgres.js own pool",
  postgresNoPipeline: "postgres.js own pool, max_pipeline: 1",
  floor: "floor + postgres.js (10 clients of max 1)",
  pgPool: "pg-pool",
  perQuery: "new connection per query",
} as const;

/** Per contender and phase: the median over rounds, with the spread of q/s. */
export function summarize(runs: readonly PgRun[]): {
  contender: string;
  phase: PgRun["phase"];
  qps: number;
  qpsMin: number;
  qpsMax: number;
  p50Ms: number;
  p99Ms: number;
  queries: number;
  errors: number;
  /** Median client CPU µs per query (undefined in results from before it was measured). */
  cpuUs: number | undefined;
}[] {
  const keys = [...new Set(runs.map((r) => `${r.phase}\u0000${r.contender}`))];
  return keys.map((key) => {
    const [phase, contender] = key.split("\u0000") as [PgRun["phase"], string];
    const rs = runs.filter((r) => r.phase === phase && r.contender === contender);
    return {
      contender,
      phase,
      qps: Math.round(median(rs.map((r) => r.qps))),
      qpsMin: Math.min(...rs.map((r) => r.qps)),
      qpsMax: Math.max(...rs.map((r) => r.qps)),
      p50Ms: median(rs.map((r) => r.p50Ms)),
      p99Ms: median(rs.map((r) => r.p99Ms)),
      queries: rs.reduce((a, r) => a + r.queries, 0),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      cpuUs: rs.every((r) => r.cpuUs !== undefined) ? median(rs.map((r) => r.cpuUs)) : undefined,
    };
  });
}
