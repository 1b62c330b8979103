/**
 * `deno task bench:all` / `npm run bench:all`: every bench that needs no database, on Deno, Bun
 * and Node, one runtime after the other, then the charts and the README tables.
 *
 * 1. core: the cases of `_cases.ts` (cases 1–3, leak detection, reaper tick, pooled map) under
 *    mitata (`run_mitata.ts`), interleaved rounds → `results/core-<runtime>.json`
 * 2. spike (`spike.ts`) → `results/spike-<runtime>.json`
 * 3. memory (`memory.ts`) → `results/memory-<runtime>.json`
 * 4. soak (`scripts/soak.ts`, 1 000 000 cycles, 10 % aborted) → `results/soak-<runtime>.json`
 * 5. `results/*.svg` and the README's tables (`_report.ts`)
 *
 * Each step runs in a child process with the runtime's GC hook exposed. The PostgreSQL bench is
 * separate (`bench:pg`): it needs a cluster.
 *
 * ```sh
 * node_modules/.bin/node bench/run_all.ts [--runtimes deno,bun,node] [--only core,spike,memory,soak]
 *   [--rounds 5] [--time 250] [--quick]
 * ```
 * `--quick` is a smoke run (1 round, short measurements, 1 repeat, 100 000 soak cycles) whose
 * results are not worth committing.
 *
 * @module
 */

import { spawn, spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { flag, machine, option, progress, type RuntimeName, writeJson } from "./_env.ts";
import { render, RESULTS_DIR } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const quick = flag("quick");
const runtimes = option("runtimes", "deno,bun,node").split(",") as RuntimeName[];
const only = new Set(option("only", "core,spike,memory,soak").split(","));
const rounds = option("rounds", quick ? "1" : "5");
const timeMs = option("time", quick ? "50" : "250");
const spikeRepeats = quick ? "1" : "3";
const memoryRepeats = quick ? "1" : "2";
const soakCycles = quick ? "100000" : "1000000";

function bin(runtime: RuntimeName): string {
  return `${ROOT}node_modules/.bin/${runtime}`;
}

/** The command line running `script` on `runtime` with its GC hook exposed. */
function argv(runtime: RuntimeName, script: string, args: string[]): string[] {
  const path = `${ROOT}${script}`;
  if (runtime === "deno") {
    return [bin("deno"), "run", "-A", "--v8-flags=--expose-gc", path, ...args];
  }
  if (runtime === "node") return [bin("node"), "--expose-gc", path, ...args];
  return [bin("bun"), path, ...args];
}

/** Runs a child, streaming its output (but JSON lines); resolves with its stdout. */
function run(command: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    let shown = 0;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      out += chunk;
      const end = out.lastIndexOf("\n") + 1;
      for (const line of out.slice(shown, end).split("\n").slice(0, -1)) {
        if (!line.startsWith("{")) process.stdout.write(`${line}\n`);
      }
      shown = end;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (shown < out.length && !out.slice(shown).startsWith("{")) {
        process.stdout.write(`${out.slice(shown)}\n`);
      }
      if (code === 0) resolve(out);
      else reject(new Error(`${command.slice(0, 3).join(" ")} … exited with ${code}`));
    });
  });
}

const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
const versions = Object.fromEntries(runtimes.map((rt) => {
  const r = spawnSync(bin(rt), ["--version"], { encoding: "utf8" });
  return [rt, r.stdout.trim().split("\n")[0]];
}));
progress(`bench:all on ${runtimes.join(", ")}: ${JSON.stringify(versions)}`);
writeJson(`${RESULTS_DIR}machine.json`, { ...machine(), runtimes: versions });

const steps: [name: string, runtime: RuntimeName, go: () => Promise<void>][] = [];
for (const rt of runtimes) {
  if (only.has("core")) {
    steps.push(["core (mitata)", rt, async () => {
      await run(argv(rt, "bench/run_mitata.ts", [
        "--rounds",
        rounds,
        "--time",
        timeMs,
        "--json",
        `${RESULTS_DIR}core-${rt}.json`,
      ]));
    }]);
  }
}
for (const rt of runtimes) {
  if (only.has("spike")) {
    steps.push(["spike", rt, async () => {
      await run(argv(rt, "bench/spike.ts", [
        "--repeats",
        spikeRepeats,
        "--json",
        `${RESULTS_DIR}spike-${rt}.json`,
      ]));
    }]);
  }
}
for (const rt of runtimes) {
  if (only.has("memory")) {
    steps.push(["memory", rt, async () => {
      await run(argv(rt, "bench/memory.ts", [
        "--repeats",
        memoryRepeats,
        "--json",
        `${RESULTS_DIR}memory-${rt}.json`,
      ]));
    }]);
  }
}
for (const rt of runtimes) {
  if (only.has("soak")) {
    steps.push(["soak", rt, async () => {
      const out = await run(argv(rt, "scripts/soak.ts", [soakCycles]));
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line === undefined) throw new Error(`soak on ${rt} printed no JSON line`);
      writeJson(`${RESULTS_DIR}soak-${rt}.json`, JSON.parse(line));
    }]);
  }
}

let failed = 0;
for (const [i, [name, rt, go]] of steps.entries()) {
  progress(`\n[${i + 1}/${steps.length}] ${name} on ${rt} (${elapsed()} so far)`);
  try {
    await go();
  } catch (error) {
    failed++;
    progress(`[${i + 1}/${steps.length}] ${name} on ${rt} FAILED: ${(error as Error).message}`);
  }
}
progress(`\nrendering charts and README tables (${elapsed()})`);
render();
progress(
  `bench:all done in ${elapsed()}${failed > 0 ? `, ${failed} step(s) failed` : ""}; ` +
    `results in bench/results/, tables in README.md`,
);
process.exitCode = failed > 0 ? 1 : 0;
