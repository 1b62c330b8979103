/**
 * What every bench script needs to know about where it runs, feature-detected the same way on
 * Deno, Bun and Node: the runtime and its version, the machine, the command-line arguments, a
 * forced full GC and the heap in use (each with the runtime's own tools), and writing results.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";

/** A JavaScript runtime the benches run on. */
export type RuntimeName = "deno" | "bun" | "node";

const g = globalThis as unknown as {
  Deno?: { version: { deno: string }; memoryUsage(): { heapUsed: number } };
  Bun?: { version: string; gc(force: boolean): void };
  gc?: () => void;
};

/** The runtime running this script. */
export const RUNTIME: RuntimeName = g.Deno !== undefined
  ? "deno"
  : g.Bun !== undefined
  ? "bun"
  : "node";

/** The running runtime's version, e.g. `24.21.0`. */
export function runtimeVersion(): string {
  if (g.Deno !== undefined) return g.Deno.version.deno;
  if (g.Bun !== undefined) return g.Bun.version;
  return process.versions.node;
}

/** The machine a result was measured on. */
export interface Machine {
  /** `os.cpus()[0].model`. */
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  /** Runtime versions, by runtime; each script fills in its own. */
  runtimes: Partial<Record<RuntimeName, string>>;
  /** ISO date of the run. */
  date: string;
  /** The 1-minute load average when the run started: how busy the machine was. */
  load: number;
  /** The commit measured, with "+" when `mod.ts` or `src/` had uncommitted changes. */
  source: string;
}

/** The commit of the working tree, "+" when the library's sources differ from it. */
function source(): string {
  const git = (...args: string[]) =>
    spawnSync("git", args, {
      encoding: "utf8",
      cwd: fileURLToPath(new URL("..", import.meta.url)),
    });
  const head = git("rev-parse", "--short", "HEAD");
  if (head.status !== 0) return "unknown";
  const dirty = git("status", "--porcelain", "--", "mod.ts", "src").stdout.trim() !== "";
  return `${head.stdout.trim()}${dirty ? "+" : ""}`;
}

/** This machine, now. */
export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    runtimes: { [RUNTIME]: runtimeVersion() },
    date: new Date().toISOString(),
    load: Math.round(os.loadavg()[0] * 100) / 100,
    source: source(),
  };
}

/** The script's arguments (after the script path), the same on every runtime. */
export const ARGS: readonly string[] = process.argv.slice(2);

/** The value after `--name`, else `fallback`. */
export function option(name: string, fallback: string): string;
export function option(name: string): string | undefined;
export function option(name: string, fallback?: string): string | undefined {
  const at = ARGS.indexOf(`--${name}`);
  return at >= 0 && at + 1 < ARGS.length ? ARGS[at + 1] : fallback;
}

/** Whether `--name` was given. */
export function flag(name: string): boolean {
  return ARGS.includes(`--${name}`);
}

/** A whole number given as `--name`, with `_` separators allowed. */
export function count(name: string, fallback: number): number {
  const text = option(name);
  if (text === undefined) return fallback;
  const n = Number(text.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a whole number ≥ 1`);
  return n;
}

/**
 * Runs a full GC with the runtime's own hook: `Bun.gc(true)`, or V8's `gc()` exposed by
 * `node --expose-gc` / `deno --v8-flags=--expose-gc`. Returns which one ran, or `undefined`.
 */
export function collect(): "Bun.gc" | "gc" | undefined {
  if (typeof g.Bun?.gc === "function") {
    g.Bun.gc(true);
    return "Bun.gc";
  }
  if (typeof g.gc === "function") {
    g.gc();
    g.gc(); // a second pass frees what the first one's finalizers released
    return "gc";
  }
  return undefined;
}

/** Bytes of JavaScript heap in use, as the runtime reports it. */
export function heapUsed(): number {
  if (g.Deno !== undefined) return g.Deno.memoryUsage().heapUsed;
  return process.memoryUsage().heapUsed;
}

/** Writes `data` as pretty JSON, making the directory if needed. */
export function writeJson(path: string, data: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(data, null, 2) + "\n");
}

/** A line of progress on stderr, so stdout stays a clean table or JSON. */
export function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Time in the units a reader expects: ns, µs, ms or s. */
export function time(ns: number): string {
  if (!Number.isFinite(ns)) return "–";
  if (ns < 1e3) return `${ns.toFixed(1)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(2)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

/** The median of `xs` (0 when empty). */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** The `q` quantile of `xs` (nearest rank, 0 when empty). */
export function quantile(xs: readonly number[] | Float64Array, q: number): number {
  if (xs.length === 0) return 0;
  const sorted = Float64Array.from(xs).sort();
  if (q === 0.5 && sorted.length % 2 === 0) {
    const m = sorted.length / 2;
    return (sorted[m - 1] + sorted[m]) / 2;
  }
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** A plain-text table with a header rule, first column left-aligned. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]) =>
    `| ${
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")
    } |`;
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
