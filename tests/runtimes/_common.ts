/**
 * The assertions every edge runtime must pass, on the answers of `worker/scenarios.ts`.
 * Called inside each runtime's `describe`, once its server is up.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { Server } from "./_harness.ts";

type Json = Record<string, unknown>;

const stats = (answer: Json) => answer.stats as Record<string, number>;

/** Registers the shared `it`s; `server()` returns the running server. */
export function commonScenarios(server: () => Server): void {
  it("constructs module-scope pools at global scope without creating anything", async () => {
    const { atLoad } = await server().get("/env") as { atLoad: Json };
    const shared = atLoad.shared as Json;
    assert.equal(shared.total, 0);
    assert.equal(shared.creating, 0);
  });

  it("reuses a module-scope pool's resource across requests", async () => {
    const first = await server().get("/shared");
    const second = await server().get("/shared");
    assert.deepEqual([first.id, first.used, second.id, second.used], [1, 1, 1, 1]);
    assert.equal(stats(second).created, 1);
    assert.equal(stats(second).acquired - stats(first).acquired, 2);
    assert.equal(stats(second).idle, 1);
  });

  it("serves a queued acquire by hand-off when the holder releases", async () => {
    const answer = await server().get("/wait");
    assert.equal(answer.waitingWhileHeld, 1);
    assert.equal(answer.secondId, answer.firstId);
    assert.equal(answer.created, 1);
    assert.equal(stats(answer).waiting, 0);
  });

  it("rejects an acquire past its deadline with AcquireTimeoutError", async () => {
    const answer = await server().get("/timeout");
    assert.equal(answer.rejected, true);
    const error = answer.error as Json;
    assert.equal(error.name, "AcquireTimeoutError");
    assert.equal(error.isAcquireTimeout, true);
    assert.equal(error.isPoolError, true);
    assert.match(error.message as string, /timed out after 30 ms \(1 in use, 0 idle, 1 waiting/);
    assert.equal(answer.timeoutMs, 30);
    assert.equal(stats(answer).timedOut, 1);
  });

  it("rejects an aborted acquire with signal.reason: queued, pre-aborted, AbortSignal.timeout()", async () => {
    const answer = await server().get("/abort");
    assert.equal(answer.queued, true);
    assert.equal(answer.preAborted, true);
    assert.equal(answer.signalTimeout, "TimeoutError");
    assert.equal(stats(answer).aborted, 3);
    assert.equal(stats(answer).waiting, 0);
  });

  it("close() rejects waiters and later acquires, awaits the lease and destroys everything", async () => {
    const answer = await server().get("/close");
    assert.equal((answer.waiter as Json).name, "PoolClosedError");
    assert.equal((answer.afterClose as Json).isPoolClosed, true);
    assert.equal(answer.closed, true);
    assert.equal(answer.destroyed, true);
    assert.equal(stats(answer).total, 0);
    assert.equal(stats(answer).destroyed, 1);
  });

  it("events() and onEvent see create, acquire, release, destroy, close", async () => {
    const answer = await server().get("/events");
    const expected = ["create", "acquire", "release", "destroy", "close"];
    assert.deepEqual(answer.iterated, expected);
    assert.deepEqual(answer.callback, expected);
  });

  it("await using releases a lease at the end of its scope", async () => {
    const answer = await server().get("/dispose");
    assert.equal(answer.released, true);
    assert.equal(stats(answer).idle, 1);
  });

  it("hands a module-scope pool's resource from one request to a concurrent one", async () => {
    const hold = server().get("/handoff/hold?ms=250");
    await new Promise((resolve) => setTimeout(resolve, 60));
    const wait = await server().get("/handoff/wait");
    assert.deepEqual(await hold, { held: true });
    assert.equal(wait.queued, 1);
    assert.equal(stats(wait).created, 1);
    assert.equal(stats(wait).acquired, 2);
  });

  it("pools I/O objects per request (the pattern that is safe on every runtime)", async () => {
    const answer = await server().get("/io/per-request");
    assert.equal(answer.ok, true);
    assert.equal(stats(answer).created, 2);
  });
}
