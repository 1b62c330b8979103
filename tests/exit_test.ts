import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { runScript, type Runtime, type ScriptRun } from "./_helpers.ts";

const RUNTIMES: Runtime[] = ["deno", "bun", "node"];
/** A child still running after this long is killed, and the test fails. */
const EXIT_LIMIT_MS = 15_000;
/** Past the exit limit, so that the limit, not the test runner, ends a hung child. */
const TEST_TIMEOUT_MS = EXIT_LIMIT_MS + 10_000;

function fixture(name: string): URL {
  return new URL(`./fixtures/${name}`, import.meta.url);
}

/** Asserts that the script exited by itself with code 0 and returns its last line as JSON. */
function report(run: ScriptRun): Record<string, unknown> {
  const output = `stdout: ${run.stdout}\nstderr: ${run.stderr}`;
  assert.equal(run.timedOut, false, `still running after ${EXIT_LIMIT_MS} ms, killed\n${output}`);
  assert.equal(run.code, 0, output);
  const lines = run.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

describe("Process exit", () => {
  for (const runtime of RUNTIMES) {
    it(
      `a ${runtime} process with an idle pool (min 2 warm, reaper running) exits without close()`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const run = await runScript(runtime, fixture("exit_idle.ts"), EXIT_LIMIT_MS);
        const r = report(run);
        // The pool did hold resources and its reaper was at work when the script ended.
        assert.equal(r.created, 3);
        assert.ok((r.validations as number) >= 1, "keepalive validated idle resources");
        assert.deepEqual(
          [r.total, r.idle, r.active, r.waiting, r.timedOut, r.aborted],
          [2, 2, 0, 0, 1, 1],
        );
      },
    );

    it(
      `a ${runtime} process exits once close() resolved, with leases out and waiters queued`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const run = await runScript(runtime, fixture("exit_close.ts"), EXIT_LIMIT_MS);
        const r = report(run);
        assert.deepEqual(r, {
          created: 3,
          destroyed: 3,
          outcomes: ["served", "served", "PoolClosedError"],
          heldReleased: true,
          total: 0,
        });
      },
    );

    it(
      `a ${runtime} process stays alive for a waiter without deadline during a create backoff`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const run = await runScript(runtime, fixture("exit_waiter_backoff.ts"), EXIT_LIMIT_MS);
        assert.deepEqual(report(run), { attempts: 2, id: 2 });
      },
    );

    it(
      `a ${runtime} process exits once nobody waits on a full shared budget, without close()`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const run = await runScript(runtime, fixture("exit_budget_full.ts"), EXIT_LIMIT_MS);
        assert.deepEqual(report(run), {
          timedOut: "AcquireTimeoutError",
          aborted: "TimeoutError",
          listening: 0,
          subscribed: true,
          total: 1,
          waiting: 0,
        });
      },
    );

    it(
      `a ${runtime} process stays alive for ready() without deadline while creates back off`,
      { timeout: TEST_TIMEOUT_MS },
      async () => {
        const run = await runScript(runtime, fixture("exit_ready_backoff.ts"), EXIT_LIMIT_MS);
        assert.deepEqual(report(run), { attempts: 3, idle: 1 });
      },
    );
  }
});
