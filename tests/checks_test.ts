/**
 * The project's own rules, as tests: formatting, lint, type checks, the runnable examples in
 * every JSDoc (`deno test --doc`), `deno doc --lint` on every entry point, and a JSR publish
 * dry run (no slow types). Each spawns Deno from node_modules, so it runs the same under every
 * runtime of the suite.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { runBinary } from "./_helpers.ts";

const config = JSON.parse(readFileSync(new URL("../deno.json", import.meta.url), "utf8")) as {
  exports: Record<string, string>;
};
const entryPoints = Object.values(config.exports);

async function deno(args: string[], timeoutMs = 120_000): Promise<void> {
  const run = await runBinary("deno", args, timeoutMs);
  const output = `${run.stdout}\n${run.stderr}`.trim().split("\n").slice(-40).join("\n");
  assert.equal(run.timedOut, false, `deno ${args.join(" ")} timed out`);
  assert.equal(run.code, 0, `deno ${args.join(" ")} failed:\n${output}`);
}

describe("project checks", () => {
  it("deno fmt --check finds nothing to reformat", async () => {
    await deno(["fmt", "--check"]);
  });

  it("deno lint is clean", async () => {
    await deno(["lint"]);
  });

  it("deno check passes on every entry point, example and test", async () => {
    await deno(["check", ...entryPoints, "examples/", "tests/", "bench/", "scripts/"]);
  });

  it("every JSDoc example runs (deno test --doc)", async () => {
    await deno(["test", "--doc", "-A", "-q", ...entryPoints, "src/"], 240_000);
  });

  it("deno doc --lint is clean on every entry point", async () => {
    await deno(["doc", "--lint", ...entryPoints]);
  });

  it("deno publish --dry-run passes (no slow types)", async () => {
    await deno(["publish", "--dry-run", "--allow-dirty"]);
  });
});
