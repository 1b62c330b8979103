/**
 * Chaos: a pool of real PostgreSQL connections under load while the database and the network
 * fail, in turn:
 *
 * 1. **kill**: every backend of the pool is terminated (`pg_terminate_backend`) every
 *    `--kill-every-ms` for the kill phase;
 * 2. **restart**: the server shuts down (fast: sessions are ended) and starts again, at once or
 *    after `--down-ms`;
 * 3. **stall**: the network path hangs for `--stall-ms` (the pool connects through a TCP proxy
 *    that stops forwarding: nothing is lost or closed, it just stops arriving, and new
 *    connections get no answer) and then resumes.
 *
 * `--workers` request loops each run acquire → `select 1` → release (`pool.use()`) through
 * edgepool and `postgresFactory` with `max` connections, realistic timeouts (acquire 2 s,
 * validate 0.5 s, create 2 s) and the factory's defaults otherwise. A separate admin
 * connection samples `pg_stat_activity` every 50 ms.
 *
 * Measured: requests served and failed (grouped by error name and code, each failure matched
 * to the fault during which it happened, plus a grace of `acquireTimeoutMs` + 1 s after it),
 * leases and connections leaked at the end (the pool's counters, then the server and the proxy
 * after close), the time to full strength after each fault (first request served; the server
 * again sees as many connections as before the fault, new ones after a kill or restart; and,
 * for information, the request rate over 300 ms back to 75 % of the second before the fault)
 * and the most connections the server saw for the pool.
 *
 * Expected failures: driver connection errors (`isConnectionError`) on queries in flight on a
 * killed connection (kill, restart), `AcquireTimeoutError` while the server is down or the
 * network stalls (restart, stall). Anything else, or any failure outside a fault's window, is
 * unexpected: a finding.
 *
 * Prints one JSON line, then a table (`--json`: the JSON line only); progress goes to stderr.
 * Exits 0 when every check passed, 1 when one failed, 2 on bad usage.
 *
 * Usage (Node 24; Deno and Bun run it too):
 *   node_modules/.bin/node scripts/chaos.ts [--json] [--duration-ms N] [--workers N] [--max N]
 *     [--kill-every-ms N] [--stall-ms N] [--down-ms N] [--pipeline-reset] [--trace]
 * `--pipeline-reset` turns on the factory's `pipelineReset` (the ROLLBACK on release is sent, not
 * awaited). `--trace` also logs the pool's events and every failure, with their times, to stderr.
 * Each option also reads EDGEPOOL_CHAOS_<NAME> (EDGEPOOL_CHAOS_DURATION_MS, …, TRACE=1). The load runs
 * for about `--duration-ms` (default 36 000) plus the restart itself; starting the throwaway
 * cluster adds a few seconds. `DATABASE_URL` is refused: the run must control the server.
 *
 * @module
 */
import { connect, createServer, type Socket } from "node:net";
import process from "node:process";
import postgres from "postgres";
import { AcquireTimeoutError, Pool, type PoolStats } from "../mod.ts";
import { isConnectionError, postgresFactory } from "../src/factories/postgres.ts";
import { type Cluster, startCluster } from "./pg_cluster.ts";

// ---------------------------------------------------------------- settings

interface Settings {
  json: boolean;
  durationMs: number;
  workers: number;
  max: number;
  killEveryMs: number;
  stallMs: number;
  /** How long the server stays down in the restart (0: it starts again at once). */
  downMs: number;
  /** Pool events and failures to stderr, with their times. */
  trace: boolean;
  /** The factory's `pipelineReset`: the ROLLBACK on release is sent, not awaited. */
  pipelineReset: boolean;
}

const POOL_OPTIONS = {
  acquireTimeoutMs: 2_000,
  validateTimeoutMs: 500,
  createTimeoutMs: 2_000,
} as const;
const CONNECT_TIMEOUT_MS = 2_000;
/** A failure this long after a fault ended still belongs to it (a wait that began during it). */
const GRACE_MS = POOL_OPTIONS.acquireTimeoutMs + 1_000;
const SAMPLE_EVERY_MS = 50;
const BUCKET_MS = 100;
/** Full rate: a window of this many buckets at this share of the second before the fault. */
const RATE_WINDOW_BUCKETS = 3;
const FULL_RATE_SHARE = 0.75;
const QUERY = "select 1";

function parseSettings(argv: string[]): Settings {
  const numbers: Record<string, number> = {
    "duration-ms": 36_000,
    workers: 150,
    max: 10,
    "kill-every-ms": 2_000,
    "stall-ms": 2_000,
    "down-ms": 0,
  };
  for (const name of Object.keys(numbers)) {
    const env = process.env[`EDGEPOOL_CHAOS_${name.toUpperCase().replaceAll("-", "_")}`];
    if (env) numbers[name] = wholeNumber(name, env);
  }
  let json = false;
  let trace = process.env.EDGEPOOL_CHAOS_TRACE === "1";
  let pipelineReset = process.env.EDGEPOOL_CHAOS_PIPELINE_RESET === "1";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--json") json = true;
    else if (arg === "--trace") trace = true;
    else if (arg === "--pipeline-reset") pipelineReset = true;
    else if (arg === "--help" || arg === "-h") usage();
    else if (arg.startsWith("--") && arg.slice(2).split("=")[0] in numbers) {
      const [name, inline] = arg.slice(2).split("=", 2);
      const value = inline ?? argv[++i];
      if (value === undefined) usage(`${arg} needs a value`);
      numbers[name] = wholeNumber(name, value);
    } else usage(`unknown argument ${arg}`);
  }
  if (numbers["duration-ms"] < 8_000) usage("--duration-ms must be at least 8000");
  return {
    json,
    trace,
    pipelineReset,
    durationMs: numbers["duration-ms"],
    workers: numbers.workers,
    max: numbers.max,
    killEveryMs: numbers["kill-every-ms"],
    stallMs: numbers["stall-ms"],
    downMs: numbers["down-ms"],
  };
}

function wholeNumber(name: string, text: string): number {
  const n = Number(text.replaceAll("_", ""));
  const least = name === "down-ms" ? 0 : 1;
  if (!Number.isInteger(n) || n < least) {
    usage(`${name} must be a whole number ≥ ${least}, received ${text}`);
  }
  return n;
}

function usage(error?: string): never {
  if (error) console.error(`chaos: ${error}`);
  console.error(
    "usage: node scripts/chaos.ts [--json] [--duration-ms N] [--workers N] [--max N] " +
      "[--kill-every-ms N] [--stall-ms N] [--down-ms N] [--pipeline-reset] [--trace]",
  );
  process.exit(error ? 2 : 0);
}

/** Phase lengths: warm-up 10 %, kill phase 22 %, and three equal calm spells after the faults. */
function schedule(s: Settings) {
  const warmMs = Math.round(s.durationMs * 0.1);
  const killPhaseMs = Math.round(s.durationMs * 0.22);
  const calmMs = Math.round((s.durationMs - warmMs - killPhaseMs - s.stallMs) / 3);
  return {
    warmMs,
    killPhaseMs,
    calmMs,
    kills: Math.max(1, Math.ceil(killPhaseMs / s.killEveryMs)),
  };
}

// ---------------------------------------------------------------- a proxy that can stall

/** A loopback TCP proxy whose path can hang and resume, like a network partition that heals. */
export interface StallProxy {
  readonly port: number;
  /** Connections open through the proxy. */
  readonly open: number;
  /** From now on nothing is forwarded, closes are not passed on, new connections get no answer. */
  stall(): void;
  /** Delivers what was held back, in order, then forwards again. */
  resume(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  toServer: Uint8Array[];
  toClient: Uint8Array[];
  clientGone: boolean;
  serverGone: boolean;
}

export function startStallProxy(targetPort: number): Promise<StallProxy> {
  const pairs = new Set<Pair>();
  let stalled = false;
  const drop = (pair: Pair) => {
    if (!pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  };
  const openUpstream = (pair: Pair) => {
    const upstream = connect(targetPort, "127.0.0.1");
    upstream.setNoDelay(true);
    pair.upstream = upstream;
    upstream.on("data", (chunk: Uint8Array) => {
      if (stalled) pair.toClient.push(chunk);
      else pair.client.write(chunk);
    });
    const gone = () => {
      if (stalled) pair.serverGone = true;
      else drop(pair);
    };
    upstream.on("close", gone);
    upstream.on("error", gone);
  };
  const server = createServer((client) => {
    client.setNoDelay(true);
    const pair: Pair = {
      client,
      upstream: undefined,
      toServer: [],
      toClient: [],
      clientGone: false,
      serverGone: false,
    };
    pairs.add(pair);
    client.on("data", (chunk: Uint8Array) => {
      if (stalled || pair.upstream === undefined) pair.toServer.push(chunk);
      else pair.upstream.write(chunk);
    });
    const gone = () => {
      if (stalled) pair.clientGone = true;
      else drop(pair);
    };
    client.on("close", gone);
    client.on("error", gone);
    if (!stalled) openUpstream(pair); // else its SYN is "lost" until the path heals
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : 0,
        get open() {
          return pairs.size;
        },
        stall() {
          stalled = true;
        },
        resume() {
          stalled = false;
          for (const pair of [...pairs]) {
            if (pair.upstream === undefined) {
              if (pair.clientGone) {
                drop(pair); // gave up before its connection ever got through
                continue;
              }
              openUpstream(pair);
            }
            const toServer = pair.toServer.splice(0);
            const toClient = pair.toClient.splice(0);
            if (!pair.serverGone) { for (const chunk of toServer) pair.upstream!.write(chunk); }
            if (!pair.clientGone) { for (const chunk of toClient) pair.client.write(chunk); }
            // A close held back arrives after the data sent before it.
            if (pair.clientGone && pair.serverGone) drop(pair);
            else if (pair.clientGone) pair.upstream!.end(() => drop(pair));
            else if (pair.serverGone) pair.client.end(() => drop(pair));
          }
        },
        close() {
          for (const pair of [...pairs]) drop(pair);
          return new Promise<void>((done) => server.close(() => done()));
        },
      });
    });
  });
}

// ---------------------------------------------------------------- measurements

type FaultKind = "kill" | "restart" | "stall";

interface Fault {
  kind: FaultKind;
  /** 1-based, per kind. */
  n: number;
  startMs: number;
  endMs: number;
  /** Backends terminated (kill). */
  terminated?: number;
  /** When the first request after the fault's end was served. */
  firstServedAt?: number;
}

interface Failure {
  atMs: number;
  kind: string;
  connection: boolean;
  timeout: boolean;
}

interface Sample {
  atMs: number;
  /** The pool's backends the server listed, or undefined when the query failed (server down). */
  pids: number[] | undefined;
}

const EXPECTED: Record<FaultKind, (f: Failure) => boolean> = {
  kill: (f) => f.connection,
  restart: (f) => f.connection || f.timeout,
  stall: (f) => f.timeout,
};

/** `Name CODE`: what a failure is grouped by; never the message, which may carry data. */
function describeError(error: unknown): string {
  if (error === null || typeof error !== "object") return `thrown ${typeof error}`;
  const { name, code } = error as { name?: unknown; code?: unknown };
  const label = typeof name === "string" ? name : "Error";
  return code === undefined || code === null ? label : `${label} ${String(code)}`;
}

function kindOf(error: unknown): string {
  if (error instanceof AcquireTimeoutError) {
    return error.cause === undefined
      ? "AcquireTimeoutError"
      : `AcquireTimeoutError (cause: ${describeError(error.cause)})`;
  }
  return describeError(error);
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function invariantHolds(s: PoolStats, max: number): boolean {
  return s.created - s.destroyed === s.idle + s.active + s.validating &&
    s.total + s.creating + s.destroying <= max;
}

// ---------------------------------------------------------------- the run

async function main(settings: Settings): Promise<Record<string, unknown>> {
  const log = (line: string) => console.error(`chaos: ${line}`);
  const plan = schedule(settings);
  const findings: string[] = [];
  const onUnhandled = (kind: string) => (error: unknown) => {
    findings.push(`${kind}: ${describeError(error)}`);
    log(`${kind}: ${describeError(error)}`);
  };
  process.on("unhandledRejection", onUnhandled("unhandledRejection"));
  process.on("uncaughtException", onUnhandled("uncaughtException"));

  const cluster: Cluster = await startCluster();
  if (!cluster.controllable) {
    await cluster.stop();
    usage("needs a server it controls: unset DATABASE_URL");
  }
  const proxy = await startStallProxy(cluster.port);
  const app = `edgepool-chaos-${process.pid}`;
  const url = `${cluster.url.replace(`:${cluster.port}/`, `:${proxy.port}/`)}` +
    `?application_name=${app}`;
  const redact = (text: string) => text.split(cluster.password).join("***");

  const t0 = performance.now();
  const now = () => performance.now() - t0;

  type Sql = ReturnType<typeof postgres>;
  // Connections the driver made, and how many of those ended: every one must end.
  let clientsMade = 0;
  const driver = (u: string, o?: postgres.Options<Record<string, never>>) => {
    clientsMade++;
    return postgres(u, o);
  };
  const pool: Pool<Sql> = new Pool(
    postgresFactory(driver, url, {
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      pipelineReset: settings.pipelineReset,
      onDisconnect: (client) => void pool.evict((c) => c === client),
    }),
    {
      max: settings.max,
      ...POOL_OPTIONS,
      onEvent: settings.trace
        ? (e) => {
          if (e.type === "acquire" || e.type === "release") return;
          const error = "error" in e && e.error !== undefined ? ` ${describeError(e.error)}` : "";
          const reason = "reason" in e ? ` ${String(e.reason)}` : "";
          log(`${now().toFixed(1)} ${e.type}${"id" in e ? ` #${e.id}` : ""}${reason}${error}`);
        }
        : undefined,
    },
  );

  let stopping = false;
  let served = 0;
  const servedPer: number[] = [];
  const failedPer: number[] = [];
  const latencies: number[] = [];
  const failures: Failure[] = [];
  const examples = new Map<string, string>();
  const faults: Fault[] = [];
  /** Faults over, waiting for their first request served. */
  const unserved: Fault[] = [];
  const samples: Sample[] = [];
  let invariantViolations = 0;
  let mostFootprint = 0;

  const bump = (per: number[], atMs: number) => {
    const i = Math.floor(atMs / BUCKET_MS);
    while (per.length <= i) per.push(0);
    per[i]++;
  };

  const worker = async () => {
    while (!stopping) {
      const started = now();
      try {
        await pool.use((sql) => sql.unsafe(QUERY));
        const done = now();
        served++;
        bump(servedPer, done);
        if (unserved.length > 0) {
          for (const fault of unserved.splice(0)) fault.firstServedAt = done;
        }
        latencies.push(done - started);
      } catch (error) {
        const atMs = now();
        const kind = kindOf(error);
        failures.push({
          atMs,
          kind,
          connection: isConnectionError(error),
          timeout: error instanceof AcquireTimeoutError,
        });
        bump(failedPer, atMs);
        if (settings.trace) log(`${atMs.toFixed(1)} failed: ${kind}`);
        const text = `${(error as Error)?.message ?? error}\n${(error as Error)?.stack ?? ""}`;
        if (text.includes(cluster.password)) findings.push(`the password in a ${kind}`);
        if (!examples.has(kind)) {
          examples.set(kind, redact(String((error as Error)?.message ?? error)).slice(0, 240));
        }
      }
    }
  };

  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const atMs = now();
      let pids: number[] | undefined;
      try {
        pids = await cluster.backendPids(app);
      } catch {
        pids = undefined; // the server is down or restarting
      }
      samples.push({ atMs, pids });
      const s = pool.stats();
      if (!invariantHolds(s, settings.max)) invariantViolations++;
      mostFootprint = Math.max(mostFootprint, s.total + s.creating + s.destroying);
      await sleep(Math.max(0, SAMPLE_EVERY_MS - (now() - atMs)));
    }
  })();

  log(
    `${settings.workers} workers, max ${settings.max}, through a proxy on :${proxy.port} to ` +
      `PostgreSQL on :${cluster.port}; ${settings.durationMs} ms`,
  );
  const workers = Array.from({ length: settings.workers }, worker);
  const at = (ms: number) => sleep(Math.max(0, ms - now()));
  const ended = (fault: Fault) => {
    faults.push(fault);
    unserved.push(fault);
  };

  // 1. Every backend of the pool terminated every killEveryMs.
  for (let k = 0; k < plan.kills; k++) {
    await at(plan.warmMs + k * settings.killEveryMs);
    const startMs = now();
    const terminated = await cluster.terminateBackends(app);
    ended({ kind: "kill", n: k + 1, startMs, endMs: now(), terminated });
    log(`kill ${k + 1}: ${terminated} backends terminated at ${Math.round(startMs)} ms`);
  }
  await at(plan.warmMs + plan.killPhaseMs + plan.calmMs);

  // 2. The server restarts.
  {
    const startMs = now();
    if (settings.downMs === 0) await cluster.restart();
    else {
      await cluster.stopServer();
      await sleep(settings.downMs);
      await cluster.startServer();
    }
    ended({ kind: "restart", n: 1, startMs, endMs: now() });
    log(`restart: down at ${Math.round(startMs)} ms, up after ${Math.round(now() - startMs)} ms`);
  }
  await sleep(plan.calmMs);

  // 3. The network path stalls, then heals.
  {
    const startMs = now();
    proxy.stall();
    await sleep(settings.stallMs);
    proxy.resume();
    ended({ kind: "stall", n: 1, startMs, endMs: now() });
    log(`stall: ${Math.round(now() - startMs)} ms from ${Math.round(startMs)} ms`);
  }
  await sleep(plan.calmMs);

  stopping = true;
  await Promise.all(workers);
  const loadMs = now();
  const afterLoad = pool.stats();

  // Close as an application would, once the creates in flight are done (see closePool).
  for (let i = 0; i < 100 && pool.stats().creating > 0; i++) await sleep(20);
  await pool.close({ timeoutMs: 2_000 });
  const afterClose = pool.stats();
  let serverAfterClose = -1;
  for (let i = 0; i < 100; i++) {
    serverAfterClose = await cluster.connections(app).catch(() => -1);
    if (serverAfterClose === 0) break;
    await sleep(30);
  }
  sampling = false;
  await sampler;
  const proxyOpenAfterClose = proxy.open;
  await proxy.close();
  await cluster.stop();

  // ------------------------------------------------------------ analysis

  // Whole buckets only: the last one was cut short when the load stopped.
  const buckets = Math.floor(loadMs / BUCKET_MS);
  const rate = (from: number, to: number) => {
    let n = 0;
    for (let i = from; i < to; i++) n += servedPer[i] ?? 0;
    return n * 1_000 / ((to - from) * BUCKET_MS);
  };
  const second = 1_000 / BUCKET_MS;
  const warmPerSec = rate(Math.ceil(500 / BUCKET_MS), Math.floor(plan.warmMs / BUCKET_MS));
  const sorted = Float64Array.from(latencies).sort();

  // A failure belongs to the latest fault that began before it and whose window (plus grace)
  // holds it, preferring one that explains it.
  const faultOf = (f: Failure) => {
    const open = faults.filter((x) => f.atMs >= x.startMs && f.atMs <= x.endMs + GRACE_MS);
    return open.findLast((x) => EXPECTED[x.kind](f)) ?? open.at(-1);
  };
  const groups = new Map<
    string,
    { count: number; expected: number; during: Record<string, number> }
  >();
  let unexpected = 0;
  for (const f of failures) {
    const fault = faultOf(f);
    const ok = fault !== undefined && EXPECTED[fault.kind](f);
    if (!ok) unexpected++;
    const g = groups.get(f.kind) ?? { count: 0, expected: 0, during: {} };
    g.count++;
    if (ok) g.expected++;
    const where = fault?.kind ?? "none";
    g.during[where] = (g.during[where] ?? 0) + 1;
    groups.set(f.kind, g);
  }
  for (const [kind, g] of groups) {
    if (g.expected < g.count) {
      findings.push(
        `${g.count - g.expected} × ${kind} outside an expected fault window ` +
          `(${JSON.stringify(g.during)}): ${examples.get(kind)}`,
      );
    }
  }

  const recoveries = faults.map((fault, i) => {
    const next = faults[i + 1]?.startMs ?? loadMs;
    const before = samples.filter((s) => s.atMs < fault.startMs && s.pids !== undefined).at(-1);
    const old = new Set(fault.kind === "stall" ? [] : before?.pids ?? []);
    // Full strength: as many connections as before the fault (max, unless the load needs fewer).
    const strength = Math.max(1, before?.pids?.length ?? settings.max);
    const back = samples.find((s) =>
      s.atMs >= fault.endMs && s.atMs < next && s.pids !== undefined &&
      s.pids.length >= strength && s.pids.every((p) => !old.has(p))
    );
    const firstServed = fault.firstServedAt;
    // The machine is shared and its speed drifts: a fault is measured against the second
    // before it, not against the whole run.
    const from = Math.floor(fault.startMs / BUCKET_MS);
    const perSecBefore = rate(Math.max(0, from - second), from);
    const after = Math.ceil(fault.endMs / BUCKET_MS);
    const perSecAfter = after + second <= buckets ? rate(after, after + second) : undefined;
    let fullRate: number | undefined;
    for (
      let b = after;
      b + RATE_WINDOW_BUCKETS <= Math.min(buckets, Math.floor(next / BUCKET_MS));
      b++
    ) {
      if (rate(b, b + RATE_WINDOW_BUCKETS) >= FULL_RATE_SHARE * perSecBefore) {
        fullRate = b * BUCKET_MS;
        break;
      }
    }
    const inWindow = failures.filter((f) => faultOf(f) === fault);
    const ms = (t: number | undefined) => t === undefined ? null : Math.round(t - fault.endMs);
    const duringSamples = samples.filter((s) => s.atMs >= fault.startMs && s.atMs < next);
    return {
      kind: fault.kind,
      n: fault.n,
      startMs: Math.round(fault.startMs),
      durationMs: Math.round(fault.endMs - fault.startMs),
      ...(fault.terminated === undefined ? {} : { terminated: fault.terminated }),
      failed: inWindow.length,
      failedBy: countBy(inWindow.map((f) => f.kind)),
      /** From the fault's start: when its first and last failures happened. */
      failedWithinMs: inWindow.length === 0
        ? null
        : [inWindow[0].atMs, inWindow.at(-1)!.atMs].map((t) => Math.round(t - fault.startMs)),
      /** From the fault's end: the first request served. */
      firstServedMs: ms(firstServed),
      /**
       * From the fault's end: the server sees as many connections as before the fault again
       * (new ones after a kill or restart).
       */
      connectionsBackMs: ms(back?.atMs),
      /**
       * From the fault's end: the 300 ms from then on ran at 75 % or more of the rate in the
       * second before the fault (null: not before the next fault; noisy on a shared machine).
       */
      fullRateMs: ms(fullRate),
      /** Requests served per second in the second before the fault and the one after its end. */
      perSecBefore: Math.round(perSecBefore),
      perSecAfter: perSecAfter === undefined ? null : Math.round(perSecAfter),
      maxConnections: Math.max(0, ...duringSamples.map((s) => s.pids?.length ?? 0)),
      /** A request served, and the server sees as many connections as before (new ones if killed). */
      recovered: firstServed !== undefined && back !== undefined,
    };
  });

  const seen = samples.filter((s) => s.pids !== undefined).map((s) => s.pids!.length);
  const maxConnections = Math.max(0, ...seen);
  const leases = {
    activeAfterLoad: afterLoad.active,
    waitingAfterLoad: afterLoad.waiting,
    acquired: afterLoad.acquired,
    released: afterLoad.released,
    leaked: afterLoad.acquired - afterLoad.released,
  };
  const connections = {
    created: afterClose.created,
    destroyed: afterClose.destroyed,
    totalAfterClose: afterClose.total,
    creatingAfterClose: afterClose.creating,
    destroyingAfterClose: afterClose.destroying,
    clientsMade,
    serverAfterClose,
    proxyOpenAfterClose,
    leaked: afterClose.created - afterClose.destroyed + Math.max(0, serverAfterClose) +
      proxyOpenAfterClose,
  };
  const checks = {
    "no lease leaked": leases.leaked === 0 && leases.activeAfterLoad === 0 &&
      leases.waitingAfterLoad === 0,
    "every connection closed": connections.leaked === 0 && afterClose.total === 0 &&
      afterClose.creating === 0 && afterClose.destroying === 0,
    "never more than max connections": maxConnections <= settings.max &&
      mostFootprint <= settings.max,
    "accounting invariant held in every sample": invariantViolations === 0,
    "every failure expected": unexpected === 0 && findings.length === 0,
    "recovered after every fault": recoveries.every((r) => r.recovered),
  };
  return {
    runtime: "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node",
    settings: { ...settings, ...POOL_OPTIONS, ...plan, graceMs: GRACE_MS },
    loadMs: Math.round(loadMs),
    served,
    failed: failures.length,
    unexpected,
    warmPerSec: Math.round(warmPerSec),
    averagePerSec: Math.round(served * 1_000 / loadMs),
    latencyMs: {
      p50: round(percentile(sorted, 0.5), 2),
      p99: round(percentile(sorted, 0.99), 2),
      max: round(sorted.at(-1) ?? 0),
    },
    failures: [...groups].sort((a, b) => b[1].count - a[1].count).map(([kind, g]) => ({
      kind,
      ...g,
      example: examples.get(kind),
    })),
    faults: recoveries,
    maxConnections,
    maxFootprint: mostFootprint,
    samples: samples.length,
    samplesServerDown: samples.length - seen.length,
    invariantViolations,
    leases,
    connections,
    pool: {
      created: afterClose.created,
      destroyed: afterClose.destroyed,
      createErrors: afterClose.createErrors,
      validations: afterClose.validations,
      validationFailures: afterClose.validationFailures,
      timedOut: afterClose.timedOut,
    },
    timeline: timeline(servedPer, failedPer, samples, 500),
    findings,
    checks,
    ok: Object.values(checks).every(Boolean),
  };
}

function countBy(keys: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = (out[k] ?? 0) + 1;
  return out;
}

/** Per `stepMs`: requests served and failed, and the most connections the server saw. */
function timeline(served: number[], failed: number[], samples: Sample[], stepMs: number) {
  const per = stepMs / BUCKET_MS;
  const steps = Math.ceil(Math.max(served.length, failed.length) / per);
  return Array.from({ length: steps }, (_, i) => {
    const sum = (xs: number[]) => xs.slice(i * per, (i + 1) * per).reduce((a, b) => a + b, 0);
    const inStep = samples.filter((s) => s.atMs >= i * stepMs && s.atMs < (i + 1) * stepMs);
    return [
      i * stepMs,
      sum(served),
      sum(failed),
      inStep.length === 0 ? null : Math.max(-1, ...inStep.map((s) => s.pids?.length ?? -1)),
    ];
  });
}

// ---------------------------------------------------------------- the table

function table(r: Record<string, unknown>): string {
  const faults = r.faults as Record<string, unknown>[];
  const failures = r.failures as { kind: string; count: number; expected: number }[];
  const ms = (v: unknown) => v === null ? "never" : `${v} ms`;
  const rows = [
    [
      "fault",
      "at",
      "took",
      "failed (by kind)",
      "1st served",
      "conns back",
      "full rate",
      "req/s before → after",
      "max conns",
    ],
    ...faults.map((f) => [
      `${f.kind} ${f.n}${f.terminated === undefined ? "" : ` (${f.terminated} killed)`}`,
      `${f.startMs} ms`,
      `${f.durationMs} ms`,
      `${f.failed}${
        Object.keys(f.failedBy as object).length
          ? ` (${
            Object.entries(f.failedBy as Record<string, number>).map(([k, n]) => `${n} ${k}`)
              .join(", ")
          })`
          : ""
      }`,
      ms(f.firstServedMs),
      ms(f.connectionsBackMs),
      ms(f.fullRateMs),
      `${f.perSecBefore} → ${f.perSecAfter ?? "?"}`,
      String(f.maxConnections),
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const line = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c])).join("  ");
  const leases = r.leases as Record<string, number>;
  const conns = r.connections as Record<string, number>;
  const latency = r.latencyMs as Record<string, number>;
  const checks = r.checks as Record<string, boolean>;
  return [
    `chaos on ${r.runtime}: ${r.loadMs} ms of load`,
    `  served ${r.served} (${r.averagePerSec}/s; ${r.warmPerSec}/s before the faults), ` +
    `latency p50 ${latency.p50} ms, p99 ${latency.p99} ms, max ${latency.max} ms`,
    `  failed ${r.failed}, unexpected ${r.unexpected}`,
    ...failures.map((f) =>
      `    ${String(f.count).padStart(6)}  ${f.kind}${f.expected < f.count ? "  (UNEXPECTED)" : ""}`
    ),
    "",
    ...rows.map(line),
    "",
    `  most connections the server saw: ${r.maxConnections} (max ${
      (r.settings as Record<string, number>).max
    }; ${r.samples} samples, ${r.samplesServerDown} while the server was down); ` +
    `pool footprint at most ${r.maxFootprint}`,
    `  leases: acquired ${leases.acquired}, released ${leases.released}, leaked ${leases.leaked}`,
    `  connections: created ${conns.created}, destroyed ${conns.destroyed}, after close: ` +
    `${conns.serverAfterClose} on the server, ${conns.proxyOpenAfterClose} through the proxy; ` +
    `leaked ${conns.leaked}`,
    ...(r.findings as string[]).map((f) => `  finding: ${f}`),
    "",
    ...Object.entries(checks).map(([name, ok]) => `  ${ok ? "ok  " : "FAIL"} ${name}`),
  ].join("\n");
}

// ---------------------------------------------------------------- entry point

if (import.meta.main) {
  const settings = parseSettings(process.argv.slice(2));
  // Bounded whatever happens: the load, the restart, start and stop of the cluster.
  const watchdog = setTimeout(() => {
    console.error("chaos: still running long after its duration; giving up");
    process.exit(1);
  }, settings.durationMs + 90_000);
  const report = await main(settings);
  clearTimeout(watchdog);
  console.log(JSON.stringify(report));
  if (!settings.json) console.log(`\n${table(report)}`);
  process.exit(report.ok ? 0 : 1);
}
