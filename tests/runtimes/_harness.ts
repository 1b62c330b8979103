/**
 * Runs the edge scenarios (`worker/scenarios.ts`) in a real edge runtime and talks to them over
 * loopback HTTP: bundles with esbuild, starts `workerd` or Node 24 hosting `edge-runtime`,
 * and stops them. Everything is spawned from the repository's `node_modules/.bin`, so the tests
 * run the same under Deno, Bun and Node.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root directory. */
export const ROOT: string = fileURLToPath(new URL("../..", import.meta.url));
const HERE = fileURLToPath(new URL(".", import.meta.url));

/** The absolute path of a tool installed in `node_modules/.bin`. */
export function bin(name: string): string {
  return join(ROOT, "node_modules", ".bin", name);
}

/** How long a runtime may take to start listening. */
const START_TIMEOUT_MS = 20_000;

/** A runtime serving the scenarios. */
export interface Server {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** GETs a scenario and returns its JSON; throws on a non-200 answer. */
  get(path: string): Promise<Record<string, unknown>>;
  /** Everything the runtime printed so far. */
  output(): string;
  /** Ends the runtime and removes its files. */
  stop(): Promise<void>;
}

/** Bundles `worker/<entry>` (and the pool, from mod.ts) into one file. */
function bundle(entry: string, format: "esm" | "iife", outFile: string): void {
  const result = spawnSync(bin("esbuild"), [
    join(HERE, "worker", entry),
    "--bundle",
    `--format=${format}`,
    "--target=esnext",
    "--platform=neutral",
    `--outfile=${outFile}`,
    "--log-level=warning",
  ], { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`esbuild failed on ${entry}:\n${result.stderr}${result.error ?? ""}`);
  }
}

/**
 * Spawns a server process and resolves once a stdout line gives its address, as `pick(line)`
 * finds it. Rejects with its output when it exits or stays silent too long.
 */
function serve(
  argv: string[],
  dir: string,
  pick: (line: string) => string | undefined,
): Promise<Server> {
  const child: ChildProcess = spawn(argv[0], argv.slice(1), {
    cwd: dir,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.on("exit", () => {
      exited = true;
      resolve();
    });
    child.on("error", (error) => {
      output += `\n${error.message}`;
      exited = true;
      resolve();
    });
  });
  const stop = async () => {
    if (!exited) {
      child.stdin?.end();
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exit;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise<Server>((resolve, reject) => {
    let pending = "";
    const fail = async (why: string) => {
      clearTimeout(timer);
      await stop();
      reject(new Error(`${argv[0]} ${why}; its output:\n${output}`));
    };
    const timer = setTimeout(() => void fail("did not start listening in time"), START_TIMEOUT_MS);
    child.stderr!.on("data", (chunk) => output += chunk);
    child.stdout!.on("data", (chunk) => {
      output += chunk;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const url = pick(line.trim());
        if (url === undefined) continue;
        clearTimeout(timer);
        resolve({
          url,
          get: async (path) => {
            const response = await fetch(url + path);
            const text = await response.text();
            if (response.status !== 200) {
              throw new Error(`GET ${path}: ${response.status} ${text}\n${output}`);
            }
            return JSON.parse(text);
          },
          output: () => output,
          stop,
        });
      }
    });
    void exit.then(() => fail(`exited (code ${child.exitCode}) before listening`));
  });
}

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** The scenarios as a module Worker in `workerd` (Cloudflare's open-source runtime). */
export function startWorkerd(): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "edgepool-workerd-"));
  bundle("worker.ts", "esm", join(dir, "worker.js"));
  copyFileSync(join(HERE, "worker", "workerd.capnp"), join(dir, "workerd.capnp"));
  // --control-fd 1: workerd reports the port it bound on its stdout, as a JSON line.
  return serve(
    [
      bin("workerd"),
      "serve",
      "workerd.capnp",
      "--socket-addr",
      "http=127.0.0.1:0",
      "--control-fd",
      "1",
    ],
    dir,
    (line) => {
      const message = parseJson(line);
      return message?.event === "listen" && message.socket === "http"
        ? `http://127.0.0.1:${message.port}`
        : undefined;
    },
  );
}

/** The scenarios as an edge function in `edge-runtime` (Vercel's Edge Runtime), hosted by Node 24. */
export function startEdgeRuntime(): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "edgepool-edge-"));
  const script = join(dir, "edge.js");
  bundle("edge.ts", "iife", script);
  return serve(
    [bin("node"), join(HERE, "edge_host.ts"), script],
    dir,
    (line) => {
      const url = parseJson(line)?.url;
      return typeof url === "string" ? url.replace(/\/$/, "") : undefined;
    },
  );
}
