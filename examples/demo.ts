/**
 * The demo: a pool of simulated connections under load, in under ten seconds.
 *
 * The simulated database server has 4 cores: opening a connection costs it 25 ms of work (as a
 * real server forks, authenticates and sets up a session) and a query 5 ms. Forty workers run
 * queries through a pool of `max` 4; then the same work opens a new connection per query. Along the way it
 * shows a queued acquire, a timeout, an abort and the pool's stats. Runs unchanged on Deno,
 * Bun and Node 24:
 *
 *   deno run -A examples/demo.ts · bun examples/demo.ts · node examples/demo.ts
 *
 * @module
 */
import { AcquireTimeoutError, Pool, type PoolEvent } from "../mod.ts";

const CONNECT_MS = 25;
const QUERY_MS = 5;
const SERVER_CORES = 4;
const WORKERS = 40;
const QUERIES_PER_WORKER = 5;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The server's cores: work beyond SERVER_CORES at once queues, as on a real server. */
const server = {
  busy: 0,
  queue: [] as (() => void)[],
  async work(ms: number): Promise<void> {
    if (this.busy < SERVER_CORES) this.busy++;
    else await new Promise<void>((resolve) => this.queue.push(resolve));
    try {
      await sleep(ms);
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.busy--;
    }
  },
};

/** A stand-in for a database connection: slow to open, quick to query. */
class FakeConnection {
  static opened = 0;
  static open = 0;
  readonly id = ++FakeConnection.opened;
  constructor() {
    FakeConnection.open++;
  }
  static async connect(): Promise<FakeConnection> {
    await server.work(CONNECT_MS);
    return new FakeConnection();
  }
  async query(sql: string): Promise<string> {
    await server.work(QUERY_MS);
    return `${sql} → ok on connection ${this.id}`;
  }
  close(): void {
    FakeConnection.open--;
  }
}

const ms = (x: number) => `${x.toFixed(1)} ms`;
const line = (label: string, value: unknown) => console.log(`  ${label.padEnd(28)} ${value}`);

console.log(
  `edgepool demo: a simulated database with ${SERVER_CORES} cores ` +
    `(a new connection costs it ${CONNECT_MS} ms, a query ${QUERY_MS} ms)\n`,
);

const pool = new Pool({
  create: () => FakeConnection.connect(),
  destroy: (conn) => conn.close(),
}, { max: 4, acquireTimeoutMs: 2_000 });

// Count events as they stream by, through the async-iterator API.
const seen = new Map<PoolEvent["type"], number>();
const counting = (async () => {
  for await (const event of pool.events()) seen.set(event.type, (seen.get(event.type) ?? 0) + 1);
})();

// 1. A scoped lease: released when the block ends, however it ends.
{
  await using conn = await pool.acquire();
  console.log("1. await using conn = await pool.acquire()");
  line("query", await conn.value.query("select 1"));
}
line("after the scope", `${pool.stats().idle} idle, ${pool.stats().active} in use`);

// 2. Load: 40 workers share 4 connections; waiters are served first come, first served.
console.log(`\n2. ${WORKERS} workers × ${QUERIES_PER_WORKER} queries through max 4`);
let started = performance.now();
await Promise.all(
  Array.from({ length: WORKERS }, async () => {
    for (let i = 0; i < QUERIES_PER_WORKER; i++) {
      await pool.use((conn) => conn.query("select 1"));
    }
  }),
);
const pooledMs = performance.now() - started;
const s = pool.stats();
line("took", ms(pooledMs));
line("connections opened", s.created);
line("acquires served", s.acquired);
line("wait p50 / p99 / max", `${ms(s.waitMs.p50)} / ${ms(s.waitMs.p99)} / ${ms(s.waitMs.max)}`);
line("hit rate (served from idle)", `${(s.hitRate * 100).toFixed(0)} %`);

// 3. Exhaustion: every connection held, the next acquire times out with the pool's state.
console.log("\n3. all 4 held; one more acquire with timeoutMs: 100");
const held = await Promise.all(Array.from({ length: 4 }, () => pool.acquire()));
try {
  await pool.acquire({ timeoutMs: 100 });
} catch (error) {
  if (!(error instanceof AcquireTimeoutError)) throw error;
  line(error.name, error.message);
}

// 4. Abort: a queued acquire leaves the queue at once when its signal aborts.
const controller = new AbortController();
const queued = pool.acquire({ signal: controller.signal });
line("queued acquires", pool.stats().waiting);
controller.abort(new Error("client went away"));
await queued.catch((error: Error) => line("aborted with", error.message));
line("queued acquires after abort", pool.stats().waiting);
await Promise.all(held.map((lease) => lease.release()));

// 5. The same work without a pool: a new connection per query.
console.log(`\n5. the same ${WORKERS * QUERIES_PER_WORKER} queries, a new connection each`);
started = performance.now();
await Promise.all(
  Array.from({ length: WORKERS }, async () => {
    for (let i = 0; i < QUERIES_PER_WORKER; i++) {
      const conn = await FakeConnection.connect();
      await conn.query("select 1");
      conn.close();
    }
  }),
);
const unpooledMs = performance.now() - started;
line("took", ms(unpooledMs));
line("connections opened", WORKERS * QUERIES_PER_WORKER);
line(
  "pooled vs per query",
  `${(unpooledMs / pooledMs).toFixed(1)}× faster, ` +
    `${((WORKERS * QUERIES_PER_WORKER) / s.created).toFixed(0)}× fewer connections ` +
    `(and never more than 4 open at once)`,
);

await pool.close();
await counting;
const final = pool.stats();
console.log("\nsummary");
line("events seen", [...seen].map(([type, n]) => `${type} ${n}`).join(", "));
line("timed out / aborted", `${final.timedOut} / ${final.aborted}`);
line("connections still open", FakeConnection.open);
line("resources leaked", final.created - final.destroyed);
