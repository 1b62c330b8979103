/**
 * edgepool inside Vercel's Edge Runtime: the edge scenarios, bundled with esbuild from mod.ts
 * into a service-worker style script, evaluated by npm `edge-runtime` (hosted by Node 24 on
 * Node's `vm`) and driven over loopback HTTP. The same file runs under Deno, Bun and Node.
 *
 * Unlike Workers, edge-runtime allows timers at global scope and shares I/O objects and timers
 * between requests; it lacks `AbortSignal.any()`, and its timers return plain numbers.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Server, startEdgeRuntime } from "./_harness.ts";
import { commonScenarios } from "./_common.ts";

type Json = Record<string, unknown>;

describe("Vercel Edge Runtime (edge-runtime): edgepool in an edge function", () => {
  let server: Server | undefined;
  before(async () => {
    server = await startEdgeRuntime();
  });
  after(async () => {
    await server?.stop();
  });
  const running = () => server!;

  commonScenarios(running);

  it("offers Symbol.asyncDispose and AbortSignal.timeout() but not AbortSignal.any()", async () => {
    const { features } = await running().get("/env") as { features: Json };
    assert.equal(features.asyncDispose, true);
    assert.equal(features.abortSignalTimeout, true);
    assert.equal(features.abortSignalAny, false);
  });

  it("makes a min: 1 pool constructed at global scope ready", async () => {
    const answer = await running().get("/warm");
    assert.equal(answer.ready, true);
    assert.equal((answer.stats as Json).idle, 1);
  });

  it("shares I/O objects between requests: a pooled stream is reused", async () => {
    assert.deepEqual(await running().get("/io"), { reused: false, ok: true });
    assert.deepEqual(await running().get("/io"), { reused: true, ok: true });
  });

  it("retries a failed create in a later request after the request that saw it ended", async () => {
    await running().get("/flaky/fail");
    const answer = await running().get("/flaky/retry");
    assert.deepEqual(answer.outcome, { id: 1 });
  });

  it("lets a create whose request ended finish and serve a later request", async () => {
    await running().get("/slow/start");
    const answer = await running().get("/slow/later");
    assert.deepEqual(answer.outcome, { id: 1 });
    assert.equal((answer.stats as Json).created, 1);
  });

  it("keeps aging idle resources between requests (the reaper destroys the idle one)", async () => {
    await running().get("/aging/use");
    const answer = await running().get("/aging/check");
    // Timers outlive requests here: the first resource ages out while /aging/check sleeps,
    // and the one its use() creates ages out after it.
    assert.equal((answer.stats as Json).total, 0);
    assert.equal((answer.stats as Json).destroyed, 2);
  });
});
