/**
 * A throwaway PostgreSQL for tests and benchmarks: a fresh cluster in a temp directory on a free
 * loopback port, started in the foreground as a child of this process, and always stopped (on
 * `stop()`, on process exit, on SIGINT/SIGTERM). Runs unchanged on Deno, Bun and Node 24.
 *
 * When `DATABASE_URL` is set, that server is used instead (`DATABASE_ADMIN_URL` for the admin
 * connection, else the same URL), and the operations that need control of the server process
 * (`restart()`, `stopServer()`, `startServer()`) throw.
 *
 * The cluster has two roles: a superuser `postgres` with trust auth (the admin URL), and
 * `edgepool` with a random password checked by SCRAM (the test URL), so a test can check that
 * the password never leaks into an error, event or log line.
 *
 * PostgreSQL refuses to run as root; as root the server runs as the system user `edgepool-pg`
 * (created with `useradd` when missing) through `setpriv`.
 *
 * @example
 * ```ts ignore
 * import { startCluster } from "./scripts/pg_cluster.ts";
 *
 * await using cluster = await startCluster();
 * console.log(cluster.url); // postgres://edgepool:…@127.0.0.1:PORT/edgepool
 * console.log(await cluster.query("select 1 as one")); // [{ one: 1 }]
 * ```
 *
 * Also runnable: `node scripts/pg_cluster.ts` starts a cluster, prints its URLs and waits for
 * Ctrl-C.
 *
 * @module
 */

import { execFile, spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import postgres from "postgres";

/** Where Debian and Ubuntu install the server binaries. */
const DEFAULT_BIN_DIRS = [
  "/usr/lib/postgresql/17/bin",
  "/usr/lib/postgresql/16/bin",
  "/usr/lib/postgresql/15/bin",
  "/usr/lib/postgresql/14/bin",
];
const OS_USER = "edgepool-pg";
const ROLE = "edgepool";
const DATABASE = "edgepool";

/** Options of {@linkcode startCluster}. */
export interface ClusterOptions {
  /** The port to listen on. @default {a free loopback port} */
  port?: number;
  /** The directory with initdb and postgres. @default {$PG_BIN, else the newest of /usr/lib/postgresql/N/bin} */
  binDir?: string;
  /** Extra server settings, as `-c name=value`. */
  settings?: Record<string, string | number>;
  /** How long startup may take. @default {30_000} */
  startTimeoutMs?: number;
}

/** A running PostgreSQL; `stop()` (or `await using`) ends it and deletes its files. */
export interface Cluster extends AsyncDisposable {
  /** The test role's URL, with its password: `postgres://edgepool:PASSWORD@127.0.0.1:PORT/edgepool`. */
  readonly url: string;
  /** A superuser URL to the same database (trust auth, no password). */
  readonly adminUrl: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** The test role's password: tests scan for it to prove it never leaks. */
  readonly password: string;
  readonly database: string;
  /** False when using `DATABASE_URL`: the server process is not ours to stop or restart. */
  readonly controllable: boolean;
  /** Runs SQL as the superuser; `params` bind `$1…`. */
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** How many server backends carry this `application_name`. */
  connections(applicationName: string): Promise<number>;
  /** The backend pids of this `application_name`. */
  backendPids(applicationName: string): Promise<number[]>;
  /** Terminates the backends of this `application_name` (or these pids); resolves with how many. */
  terminateBackends(target: string | number[]): Promise<number>;
  /** Fast shutdown of the server; the data stays. */
  stopServer(): Promise<void>;
  /** Starts the server again on the same port. */
  startServer(): Promise<void>;
  /** `stopServer()` then `startServer()`, like `pg_ctl restart -m fast`. */
  restart(): Promise<void>;
  /** Stops the server and deletes the cluster. Idempotent. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (free when asked; a race is possible, so startup retries). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function findBinDir(given?: string): string {
  const candidates = given ? [given] : [process.env.PG_BIN ?? "", ...DEFAULT_BIN_DIRS];
  for (const dir of candidates) {
    if (dir && existsSync(join(dir, "postgres")) && existsSync(join(dir, "initdb"))) return dir;
  }
  throw new Error(
    `PostgreSQL server binaries not found (looked in ${candidates.filter(Boolean).join(", ")}); ` +
      "install postgresql (e.g. apt-get install postgresql-15) or set PG_BIN or DATABASE_URL",
  );
}

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { input, encoding: "utf8", stdio: "pipe" });
  if (r.error) throw new Error(`${cmd} failed to start: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status}:\n${r.stdout}${r.stderr}`);
  }
  return r.stdout + r.stderr;
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** The uid and gid to run the server as: an unprivileged system user when we are root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  let r = spawnSync("id", ["-u", OS_USER], { encoding: "utf8" });
  if (r.status !== 0) {
    run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER]);
    r = spawnSync("id", ["-u", OS_USER], { encoding: "utf8" });
  }
  const gid = spawnSync("id", ["-g", OS_USER], { encoding: "utf8" }).stdout;
  return { uid: Number(r.stdout.trim()), gid: Number(gid.trim()) };
}

/** The command line running `argv` as `user` (setpriv execs, so the pid is the server's). */
function asUser(user: { uid: number; gid: number } | undefined, argv: string[]): string[] {
  if (!user) return argv;
  return [
    "setpriv",
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    "--clear-groups",
    "--",
    ...argv,
  ];
}

/** Deletes a directory; a server still shutting down may add files meanwhile, so retry. */
function removeDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  } catch { /* best effort: it is in the temp directory */ }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isReady(bin: string, port: number, dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      join(bin, "pg_isready"),
      ["-q", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-t", "1"],
      { cwd: dir },
      (error) => resolve(!error),
    );
  });
}

// Clusters alive in this process, stopped at exit even when the test forgot (or crashed).
// On a signal they get a clean shutdown (bounded); at exit only synchronous work is possible.
const live = new Set<{ kill(): void; stop?(): Promise<void> }>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const c of live) c.kill();
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      const stops = [...live].map((c) => c.stop?.().catch(() => c.kill()) ?? c.kill());
      const timer = setTimeout(() => process.exit(130), 5_000);
      void Promise.all(stops).finally(() => {
        clearTimeout(timer);
        process.exit(130);
      });
    });
  }
}

/** Uses `DATABASE_URL` when set, else starts a fresh cluster. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const external = process.env.DATABASE_URL;
  if (external) return useExternal(external, process.env.DATABASE_ADMIN_URL ?? external);
  const bin = findBinDir(options.binDir);
  const user = serverUser();
  const dir = mkdtempSync(join(tmpdir(), "edgepool-pg-"));
  const data = join(dir, "data");
  const password = `pw-${randomBytes(12).toString("hex")}`;
  let child: ChildProcess | undefined;
  let running = false; // the child has not exited (exitCode alone misses deaths by signal)
  let stopped = false;
  const killer: { kill(): void; stop?: () => Promise<void> } = {
    kill() {
      // Immediate shutdown: the postmaster ends its backends; nothing async is possible here.
      if (running) child?.kill("SIGQUIT");
      removeDir(dir);
    },
  };
  try {
    if (user) chownSync(dir, user.uid, user.gid);
    run(...split(asUser(user, [
      join(bin, "initdb"),
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
      "--no-instructions",
    ])));
    // The test role authenticates with a password; everyone else is trusted on loopback.
    writeFileSync(
      join(data, "pg_hba.conf"),
      [
        `host all ${ROLE} 127.0.0.1/32 scram-sha-256`,
        `host all ${ROLE} ::1/128 scram-sha-256`,
        "host all all 127.0.0.1/32 trust",
        "host all all ::1/128 trust",
        "local all all trust",
        "",
      ].join("\n"),
    );
    if (user) chownSync(join(data, "pg_hba.conf"), user.uid, user.gid);
    // Single-user mode sets up roles before the server listens: no window without a password.
    const out = run(
      ...split(asUser(user, [join(bin, "postgres"), "--single", "-D", data, "postgres"])),
      `CREATE ROLE ${ROLE} LOGIN PASSWORD '${password}';\n` +
        `CREATE DATABASE ${DATABASE} OWNER ${ROLE};\n`,
    );
    // Single-user mode exits 0 even when a statement failed.
    if (/\b(ERROR|FATAL):/.test(out)) throw new Error(`setting up roles failed:\n${out}`);
  } catch (error) {
    removeDir(dir);
    throw error;
  }

  let port = options.port ?? await freePort();
  const settings: Record<string, string | number> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: dir,
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
    max_connections: 100,
    shared_buffers: "16MB",
    password_encryption: "scram-sha-256",
    ...options.settings,
  };
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const logFile = join(dir, "postgres.log");
  const log = () => existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-4_000) : "";

  const startServer = async (): Promise<void> => {
    if (stopped) throw new Error("the cluster was stopped");
    if (running) return;
    const argv = asUser(user, [
      join(bin, "postgres"),
      "-D",
      data,
      "-p",
      String(port),
      ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    ]);
    // The log goes straight to a file: no pipe to drain, no logger process left behind.
    const fd = openSync(logFile, "a");
    const proc = spawn(argv[0], argv.slice(1), { stdio: ["ignore", fd, fd], cwd: dir });
    closeSync(fd);
    child = proc;
    proc.unref();
    running = true;
    let exited = false;
    proc.once("exit", () => {
      exited = true;
      if (child === proc) running = false;
    });
    live.add(killer);
    hookExit();
    const deadline = Date.now() + startTimeoutMs;
    while (!(await isReady(bin, port, dir))) {
      if (exited || Date.now() > deadline) {
        if (!exited) proc.kill("SIGQUIT");
        throw new Error(
          `PostgreSQL did not start on port ${port} (${
            exited ? "it exited" : "timed out"
          }):\n${log()}`,
        );
      }
      await sleep(50);
    }
  };

  const stopServer = async (): Promise<void> => {
    const proc = child;
    if (!proc || !running) return;
    const gone = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGINT"); // fast shutdown: rolls back and disconnects every session
    const timer = setTimeout(() => proc.kill("SIGQUIT"), 10_000);
    await gone;
    clearTimeout(timer);
  };

  for (let attempt = 1;; attempt++) {
    try {
      await startServer();
      break;
    } catch (error) {
      // Someone took the free port between our check and the server's bind: try another.
      if (attempt >= 3 || options.port !== undefined || !/could not bind|in use/.test(log())) {
        killer.kill();
        live.delete(killer);
        throw error;
      }
      port = await freePort();
    }
  }

  const url = `postgres://${ROLE}:${password}@127.0.0.1:${port}/${DATABASE}`;
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/${DATABASE}`;
  const admin = adminClient(adminUrl);
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    killer.stop = undefined;
    await admin.end({ timeout: 0 }).catch(() => {});
    await stopServer();
    live.delete(killer);
    removeDir(dir);
  };
  killer.stop = stop;
  return {
    ...commonOps(admin),
    url,
    adminUrl,
    host: "127.0.0.1",
    port,
    user: ROLE,
    password,
    database: DATABASE,
    controllable: true,
    stopServer,
    startServer,
    async restart() {
      await stopServer();
      await startServer();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

function split(argv: string[]): [string, string[]] {
  return [argv[0], argv.slice(1)];
}

type AdminSql = ReturnType<typeof postgres>;

function adminClient(adminUrl: string): AdminSql {
  return postgres(adminUrl, {
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: "edgepool-admin" },
  });
}

function commonOps(admin: AdminSql) {
  const query = async <R>(text: string, params: unknown[] = []): Promise<R[]> => {
    // deno-lint-ignore no-explicit-any
    const rows = await admin.unsafe(text, params as any[]);
    return [...rows] as R[];
  };
  return {
    query,
    async connections(applicationName: string): Promise<number> {
      const [row] = await query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where application_name = $1",
        [applicationName],
      );
      return row.n;
    },
    async backendPids(applicationName: string): Promise<number[]> {
      const rows = await query<{ pid: number }>(
        "select pid from pg_stat_activity where application_name = $1 order by pid",
        [applicationName],
      );
      return rows.map((r) => r.pid);
    },
    async terminateBackends(target: string | number[]): Promise<number> {
      const rows = typeof target === "string"
        ? await query<{ ok: boolean }>(
          "select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = $1",
          [target],
        )
        : await query<{ ok: boolean }>(
          "select pg_terminate_backend(pid) as ok from unnest($1::int[]) as pid",
          [target],
        );
      return rows.filter((r) => r.ok).length;
    },
  };
}

function useExternal(url: string, adminUrl: string): Cluster {
  const parsed = new URL(url);
  const admin = adminClient(adminUrl);
  const refuse = () =>
    Promise.reject(new Error("cannot control the server: DATABASE_URL points at an external one"));
  const stop = async () => {
    await admin.end({ timeout: 0 }).catch(() => {});
  };
  return {
    ...commonOps(admin),
    url,
    adminUrl,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: parsed.pathname.slice(1),
    controllable: false,
    stopServer: refuse,
    startServer: refuse,
    restart: refuse,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Options of {@linkcode startPgBouncer}. */
export interface PgBouncerOptions {
  /** `session`, `transaction` or `statement`. @default {"transaction"} */
  poolMode?: "session" | "transaction" | "statement";
  /** Server connections per user and database. @default {2} */
  poolSize?: number;
  /** The pgbouncer executable. @default {$PGBOUNCER, else pgbouncer on PATH or in /usr/sbin} */
  bin?: string;
}

/** A running PgBouncer in front of a {@linkcode Cluster}. */
export interface PgBouncer extends AsyncDisposable {
  /** The cluster's test URL through PgBouncer (same role and password). */
  readonly url: string;
  readonly port: number;
  /** Stops PgBouncer and deletes its files. Idempotent. */
  stop(): Promise<void>;
}

function findPgBouncer(given?: string): string {
  const candidates = given ? [given] : [process.env.PGBOUNCER ?? "", "/usr/sbin/pgbouncer"];
  for (const path of (process.env.PATH ?? "").split(":")) candidates.push(join(path, "pgbouncer"));
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) {
    throw new Error(
      "pgbouncer not found (looked in $PGBOUNCER, /usr/sbin and PATH); " +
        "install it (e.g. apt-get install pgbouncer) or set PGBOUNCER",
    );
  }
  return found;
}

/**
 * Starts PgBouncer on a free loopback port in front of `cluster`: clients authenticate with the
 * cluster's test role and password (SCRAM), and so does PgBouncer towards the server.
 */
export async function startPgBouncer(
  cluster: Cluster,
  options: PgBouncerOptions = {},
): Promise<PgBouncer> {
  const bin = findPgBouncer(options.bin);
  const user = serverUser(); // PgBouncer refuses to run as root too
  const dir = mkdtempSync(join(tmpdir(), "edgepool-pgbouncer-"));
  const port = await freePort();
  const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
  writeFileSync(join(dir, "userlist.txt"), `${quote(cluster.user)} ${quote(cluster.password)}\n`);
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `${cluster.database} = host=${cluster.host} port=${cluster.port} dbname=${cluster.database}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = scram-sha-256",
      `auth_file = ${join(dir, "userlist.txt")}`,
      `pool_mode = ${options.poolMode ?? "transaction"}`,
      `default_pool_size = ${options.poolSize ?? 2}`,
      "max_client_conn = 500",
      `logfile = ${join(dir, "pgbouncer.log")}`,
      "",
    ].join("\n"),
  );
  if (user) {
    for (const f of ["", "userlist.txt", "pgbouncer.ini"]) {
      chownSync(join(dir, f), user.uid, user.gid);
    }
  }
  const argv = asUser(user, [bin, join(dir, "pgbouncer.ini")]);
  const proc = spawn(argv[0], argv.slice(1), { stdio: "ignore", cwd: dir });
  proc.unref();
  let running = true;
  proc.once("exit", () => running = false);
  const killer = {
    kill() {
      if (running) proc.kill("SIGKILL");
      removeDir(dir);
    },
  };
  live.add(killer);
  hookExit();
  const logFile = join(dir, "pgbouncer.log");
  const deadline = Date.now() + 10_000;
  // Ready once it listens: a TCP connect succeeds.
  while (!(await canConnect(port))) {
    if (!running || Date.now() > deadline) {
      const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2_000) : "";
      killer.kill();
      live.delete(killer);
      throw new Error(`pgbouncer did not start on port ${port}:\n${log}`);
    }
    await sleep(20);
  }
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (running) {
      const gone = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
      proc.kill("SIGTERM");
      // A ref'd timer also keeps the process alive until the exit event arrives.
      const timer = setTimeout(() => proc.kill("SIGKILL"), 3_000);
      await gone;
      clearTimeout(timer);
    }
    live.delete(killer);
    removeDir(dir);
  };
  return {
    url: cluster.url.replace(`:${cluster.port}/`, `:${port}/`),
    port,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

// Run directly: start a cluster and keep it until Ctrl-C.
if (import.meta.main) {
  const cluster = await startCluster();
  console.log(`url:      ${cluster.url}\nadminUrl: ${cluster.adminUrl}\n(Ctrl-C stops it)`);
  setInterval(() => {}, 1 << 30);
}
