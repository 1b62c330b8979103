/**
 * edgepool inside a real Cloudflare Worker: the edge scenarios, bundled with esbuild from
 * mod.ts, run by `workerd` (npm `workerd`, the runtime of Cloudflare Workers) and driven over
 * loopback HTTP. The same file runs under Deno, Bun and Node: each spawns workerd.
 *
 * What Workers change: no timers or I/O at global scope (a module-scope pool must start
 * nothing until first used), and I/O objects and timers belong to the request that made them:
 * a timer set while serving one request is cancelled when that request ends, and an I/O
 * object (a stream, a socket) cannot be used by another request.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Server, startWorkerd } from "./_harness.ts";
import { commonScenarios } from "./_common.ts";

type Json = Record<string, unknown>;

describe("Cloudflare Workers (workerd): edgepool in a real Worker", () => {
  let server: Server | undefined;
  before(async () => {
    server = await startWorkerd();
  });
  after(async () => {
    await server?.stop();
  });
  const running = () => server!;

  commonScenarios(running);

  it("offers what the pool and `await using` need: Symbol.asyncDispose, AbortSignal.timeout()", async () => {
    const { features } = await running().get("/env") as { features: Json };
    assert.equal(features.asyncDispose, true);
    assert.equal(features.abortSignalTimeout, true);
    assert.equal(features.performanceNow, true);
  });

  it("binds I/O objects to one request: a pooled stream fails when a later request reuses it", async () => {
    const first = await running().get("/io");
    assert.deepEqual(first, { reused: false, ok: true });
    const second = await running().get("/io");
    assert.equal(second.reused, true);
    assert.equal(second.ok, false);
    assert.match((second.error as Json).message as string, /request/);
  });

  it("retries a failed create in a later request after the request that saw it ended", async () => {
    await running().get("/flaky/fail");
    const answer = await running().get("/flaky/retry");
    assert.deepEqual(answer.outcome, { id: 1 });
  });

  it("does not lose a slot to a create whose request ended before it finished", async () => {
    await running().get("/slow/start");
    const answer = await running().get("/slow/later");
    assert.deepEqual(answer.outcome, { id: 1 });
  });

  it("keeps aging idle resources in later requests that use the pool", async () => {
    await running().get("/aging/use");
    const answer = await running().get("/aging/check");
    assert.equal((answer.stats as Json).total, 0);
  });

  it("makes a min: 1 pool constructed at global scope ready on first use", async () => {
    const answer = await running().get("/warm");
    assert.equal(answer.ready, true);
  });
});
