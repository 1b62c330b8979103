/**
 * Runs scripts/soak.ts as a child process on Deno, Bun and Node with a small cycle count and
 * checks its report: every check passed, the counters match the mix exactly, the heap stayed
 * flat after warm-up, and no listener or timer was left. `npm run soak` runs the full count.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

type Runtime = "deno" | "bun" | "node";

const CYCLES = 20_000;
/** Tighter than the script's default: a leak of ~100 bytes a cycle shows within 18 000 cycles. */
const HEAP_LIMIT_MB = 2;
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const BIN = fileURLToPath(new URL("../node_modules/.bin/", import.meta.url));
// Taken at load: the child's deadline is real time, whatever a test did to the globals.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

/** How each runtime runs the script with a GC the script can force. */
const ARGS: Record<Runtime, string[]> = {
  deno: ["run", "-A", "--v8-flags=--expose-gc", "scripts/soak.ts"],
  bun: ["scripts/soak.ts"],
  node: ["--expose-gc", "scripts/soak.ts"],
};

interface Report {
  ok: boolean;
  failures: string[];
  runtime: string;
  cycles: number;
  done: { release: number; abort: number; timeout: number; destroy: number; holds: number };
  stats: {
    acquired: number;
    released: number;
    timedOut: number;
    aborted: number;
    destroyed: number;
    created: number;
  };
  heap: { gc: string; warmMB: number; lastMB: number; growthMB: number };
  timers: { liveMax: number; left: number };
  listeners: { left: number };
  checkpoints: { cycles: number; heapMB: number; timers: number; listeners: number }[];
}

function soak(runtime: Runtime): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = {
    ...process.env,
    EDGEPOOL_SOAK_CYCLES: String(CYCLES),
    EDGEPOOL_SOAK_HEAP_MB: String(HEAP_LIMIT_MB),
    NO_COLOR: "1",
  };
  delete env.NODE_TEST_CONTEXT; // set by `node --test`: a node child would act as its worker
  return new Promise((resolve, reject) => {
    const child = spawn(BIN + runtime, ARGS[runtime], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => (stdout += chunk));
    child.stderr.on("data", (chunk: string) => (stderr += chunk));
    const timer = realSetTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", (error) => {
      realClearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      realClearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

for (const runtime of ["deno", "bun", "node"] as const) {
  describe(`scripts/soak.ts on ${runtime}`, () => {
    it(`runs ${CYCLES} cycles with a flat heap, exact counts and nothing left over`, async () => {
      const run = await soak(runtime);
      const line = run.stdout.split("\n").find((l) => l.startsWith("{"));
      assert.ok(line, `a JSON report line; stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
      const report = JSON.parse(line) as Report;
      assert.deepEqual(report.failures, [], run.stdout);
      assert.equal(report.ok, true);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(report.runtime, runtime);
      assert.equal(report.cycles, CYCLES);

      const c = CYCLES / 100;
      const { done, stats } = report;
      assert.deepEqual(
        [done.release, done.abort, done.timeout, done.destroy],
        [84 * c, 10 * c, 5 * c, c],
        "the mix: 84 % released, 10 % aborted, 5 % timed out, 1 % destroyed",
      );
      assert.equal(stats.acquired, done.release + done.destroy + done.holds);
      assert.equal(stats.released, stats.acquired);
      assert.equal(stats.timedOut, done.timeout);
      assert.equal(stats.aborted, done.abort);
      assert.equal(stats.destroyed, done.destroy);

      assert.notEqual(report.heap.gc, "none", "the heap was measured after a forced GC");
      assert.ok(report.heap.growthMB < HEAP_LIMIT_MB, `heap grew ${report.heap.growthMB} MB`);
      assert.equal(report.listeners.left, 0);
      assert.equal(report.timers.left, 0);
      assert.ok(report.timers.liveMax <= 1, "only the reaper's interval between rounds");
      assert.ok(report.checkpoints.length >= 10);
      assert.ok(report.checkpoints.every((p) => p.listeners === 0));
      assert.match(run.stdout, /heap MB/, "the human table follows");
    });
  });
}
