/**
 * The spike (HikariCP's "Welcome to the Jungle"): creating a resource takes 150 ms, each use
 * 2 ms, `max` 50, `min` 5 warm, and 50 requests arrive at once. Five warm resources serve the
 * 50 uses in about 20 ms, long before any new one could be ready, so a pool that answers the
 * burst with 45 creates ends up with 50 connections it never needed (HikariCP ends with 5–6).
 * For each pool: how many resources it created for the burst, how many it holds once its
 * creates have settled, and the p50/p99 wait of the 50 requests (pooled over the repeats).
 *
 * A second scenario holds each resource 50 ms instead: 50 × 50 ms of work on 5 resources
 * outlasts a create, so there new resources do help, and it shows what pacing creates costs.
 *
 * The floor is 5 resources and no creation at all: the waits the warm resources alone give.
 *
 * Usage: `<runtime> bench/spike.ts [--repeats 5] [--json path]`
 *
 * @module
 */

import { createPool } from "generic-pool";
import { Pool as TarnPool } from "tarn";
import { Pool } from "../mod.ts";
import { FloorPool } from "./_floor.ts";
import { FakeClient, pgPool } from "./_pg_pool.ts";
import {
  count,
  machine,
  median,
  option,
  progress,
  quantile,
  RUNTIME,
  runtimeVersion,
  table,
  writeJson,
} from "./_env.ts";

const CREATE_MS = 150;
const MAX = 50;
const MIN = 5;
const REQUESTS = 50;
/** How long the pool may take to settle its creates after the burst. */
const SETTLE_LIMIT_MS = 2_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class Conn {
  uses = 0;
}

/** Creates and destroys as the factory saw them. */
class Tally {
  started = 0;
  inFlight = 0;
  destroyed = 0;
  async create(): Promise<Conn> {
    this.started++;
    this.inFlight++;
    try {
      await sleep(CREATE_MS);
      return new Conn();
    } finally {
      this.inFlight--;
    }
  }
  get live(): number {
    return this.started - this.inFlight - this.destroyed;
  }
}

/** One pool under test, reduced to what the scenario does with it. */
interface Subject {
  tally: Tally;
  /** Resolves with the function that gives the resource back. */
  acquire(): Promise<() => unknown>;
  close(): Promise<void>;
}

interface Contender {
  name: string;
  make(): Promise<Subject>;
}

/** Acquires `n` at once and gives them back: `min` resources exist and are idle. */
async function warm(subject: Subject, n: number): Promise<void> {
  const releases = await Promise.all(Array.from({ length: n }, () => subject.acquire()));
  for (const release of releases) await release();
}

function edgepool(name: string, createConcurrency?: number): Contender {
  return {
    name,
    async make() {
      const tally = new Tally();
      const pool = new Pool<Conn>({
        create: () => tally.create(),
        destroy: () => void tally.destroyed++,
      }, { min: MIN, max: MAX, ...(createConcurrency === undefined ? {} : { createConcurrency }) });
      await pool.ready();
      return {
        tally,
        async acquire() {
          const lease = await pool.acquire();
          lease.value.uses++;
          return () => lease.release();
        },
        close: () => pool.close(),
      };
    },
  };
}

const CONTENDERS: Contender[] = [
  {
    name: "floor: 5 resources, never creates",
    async make() {
      const tally = new Tally();
      const conns = await Promise.all(Array.from({ length: MIN }, () => tally.create()));
      const pool = new FloorPool(conns);
      return {
        tally,
        async acquire() {
          const conn = await pool.acquire();
          conn.uses++;
          return () => pool.release(conn);
        },
        close: () => Promise.resolve(),
      };
    },
  },
  edgepool("edgepool (createConcurrency 1, the default)"),
  edgepool("edgepool, createConcurrency 2", 2),
  edgepool("edgepool, createConcurrency Infinity", Infinity),
  {
    name: "generic-pool",
    async make() {
      const tally = new Tally();
      const pool = createPool<Conn>({
        create: () => tally.create(),
        destroy: () => {
          tally.destroyed++;
          return Promise.resolve();
        },
      }, { min: MIN, max: MAX });
      const subject: Subject = {
        tally,
        async acquire() {
          const conn = await pool.acquire();
          conn.uses++;
          return () => pool.release(conn);
        },
        async close() {
          await pool.drain();
          await pool.clear();
        },
      };
      await warm(subject, MIN);
      return subject;
    },
  },
  {
    name: "tarn",
    async make() {
      const tally = new Tally();
      const pool = new TarnPool<Conn>({
        create: () => tally.create(),
        destroy: () => void tally.destroyed++,
        min: MIN,
        max: MAX,
      });
      const subject: Subject = {
        tally,
        async acquire() {
          const conn = await pool.acquire().promise;
          conn.uses++;
          return () => pool.release(conn);
        },
        async close() {
          await pool.destroy();
        },
      };
      await warm(subject, MIN);
      return subject;
    },
  },
  {
    name: "pg-pool",
    async make() {
      const tally = new Tally();
      // The client's connect is the create: counted through the tally as for the others.
      const { pool } = pgPool({
        max: MAX,
        min: MIN,
        idleTimeoutMillis: 10_000,
        supply: () => {
          const client = new FakeClient(tally.started + 1, 0);
          client.connect = (callback) => {
            tally.create().then(() => callback(), callback);
          };
          const end = client.end.bind(client);
          client.end = (callback) => {
            tally.destroyed++;
            return end(callback);
          };
          return client;
        },
      });
      const subject: Subject = {
        tally,
        async acquire() {
          const client = await pool.connect();
          client.uses++;
          return () => client.release();
        },
        close: () => pool.end(),
      };
      await warm(subject, MIN);
      return subject;
    },
  },
];

interface Trial {
  /** Resources created because of the burst (creates started after the warm-up). */
  created: number;
  /** Live resources once every create has settled. */
  live: number;
  /** Each request's wait for a resource, ms. */
  waits: number[];
  /** From the burst to the last request served, ms. */
  servedMs: number;
}

async function trial(contender: Contender, useMs: number): Promise<Trial> {
  const subject = await contender.make();
  const { tally } = subject;
  if (tally.live !== MIN || tally.inFlight !== 0) {
    throw new Error(`${contender.name}: ${tally.live} live after warm-up, expected ${MIN}`);
  }
  await sleep(20);
  const before = tally.started;
  const waits: number[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: REQUESTS }, async () => {
    const release = await subject.acquire();
    waits.push(performance.now() - t0);
    await sleep(useMs);
    await release();
  }));
  const servedMs = Math.max(...waits);
  const settleBy = performance.now() + SETTLE_LIMIT_MS;
  while (tally.inFlight > 0 && performance.now() < settleBy) await sleep(10);
  await sleep(20); // a create that settled may still be on its way into the pool
  const result = { created: tally.started - before, live: tally.live, waits, servedMs };
  await subject.close();
  return result;
}

/** One contender's figures in one scenario. */
export interface SpikeRow {
  name: string;
  created: number[];
  live: number[];
  waitP50Ms: number;
  waitP99Ms: number;
  servedMs: number;
}

/** What `--json` writes. */
export interface SpikeResults {
  kind: "spike";
  runtime: string;
  version: string;
  machine: ReturnType<typeof machine>;
  repeats: number;
  createMs: number;
  min: number;
  max: number;
  requests: number;
  scenarios: { name: string; useMs: number; rows: SpikeRow[] }[];
}

const repeats = count("repeats", 5);
const jsonPath = option("json");
const info = machine();
const scenarios: SpikeResults["scenarios"] = [];
for (const useMs of [2, 50]) {
  const name = `${REQUESTS} requests at once, ${useMs} ms use each`;
  progress(`${RUNTIME}: spike, ${name} (${repeats} repeats)`);
  const trials = CONTENDERS.map(() => [] as Trial[]);
  for (let r = 0; r < repeats; r++) {
    // A different contender goes first each repeat.
    for (let k = 0; k < CONTENDERS.length; k++) {
      const i = (k + r) % CONTENDERS.length;
      trials[i].push(await trial(CONTENDERS[i], useMs));
    }
  }
  const rows: SpikeRow[] = CONTENDERS.map((c, i) => {
    const waits = trials[i].flatMap((t) => t.waits);
    return {
      name: c.name,
      created: trials[i].map((t) => t.created),
      live: trials[i].map((t) => t.live),
      waitP50Ms: quantile(waits, 0.5),
      waitP99Ms: quantile(waits, 0.99),
      servedMs: median(trials[i].map((t) => t.servedMs)),
    };
  });
  scenarios.push({ name, useMs, rows });
  const span = (xs: number[]) => {
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    return lo === hi ? `${lo}` : `${lo}–${hi}`;
  };
  console.log(
    `\n${RUNTIME} ${runtimeVersion()}: ${name}; create ${CREATE_MS} ms, min ${MIN}, ` +
      `max ${MAX}, ${repeats} repeats\n`,
  );
  console.log(table(
    ["pool", "created", "live after", "wait p50", "wait p99", "all served"],
    rows.map((r) => [
      r.name,
      span(r.created),
      span(r.live),
      `${r.waitP50Ms.toFixed(1)} ms`,
      `${r.waitP99Ms.toFixed(1)} ms`,
      `${r.servedMs.toFixed(0)} ms`,
    ]),
  ));
}

if (jsonPath !== undefined) {
  const out: SpikeResults = {
    kind: "spike",
    runtime: RUNTIME,
    version: runtimeVersion(),
    machine: info,
    repeats,
    createMs: CREATE_MS,
    min: MIN,
    max: MAX,
    requests: REQUESTS,
    scenarios,
  };
  writeJson(jsonPath, out);
  progress(`wrote ${jsonPath}`);
}
