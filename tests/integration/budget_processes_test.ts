/**
 * kvBudget() across processes against a real PostgreSQL (scripts/pg_cluster.ts): 8 worker
 * processes (Deno with Deno.openKv, plus one Node and one Bun with the npm @deno/kv client, on
 * the same SQLite file), each a Pool with max 10 under a shared limit of 20. This process samples
 * pg_stat_activity every 50 ms and the KV slots every 25 ms. The measured figures are printed
 * (`budget:` lines) for the README.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { makeLimitedV8Serializer, openKv } from "@deno/kv";
import { type Cluster, startCluster } from "../../scripts/pg_cluster.ts";
import {
  killAll,
  sampler,
  startWorker,
  type Worker,
  type WorkerRuntime,
} from "../fixtures/budget_spawn.ts";

const LIMIT = 20;
const MAX = 10;
const TTL_MS = 3_000;
const POLL_MS = 50;

let cluster: Cluster;
let dir: string;
let runs = 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function setup(name: string) {
  const app = `edgepool-budget-${process.pid}-${++runs}`;
  return {
    app,
    base: {
      url: `${cluster.url}?application_name=${app}`,
      kvPath: join(dir, `${name}.db`),
      key: ["budget", app],
      limit: LIMIT,
      ttlMs: TTL_MS,
      pollMs: POLL_MS,
      max: MAX,
    },
  };
}

/** Workers' "done" events, after they all exited; asserts each exited 0. */
async function results(workers: Worker[], timeoutMs: number) {
  const done = await Promise.all(workers.map((w) => w.next("done", timeoutMs)));
  const exits = await Promise.all(workers.map((w) => w.exited));
  exits.forEach((e, i) =>
    assert.equal(
      e.code,
      0,
      `${workers[i].name} exited ${e.code ?? e.signal}\n${workers[i].stderr()}`,
    )
  );
  return done as {
    name: string;
    runtime: string;
    served: number;
    failed: number;
    firstError?: string;
    maxWaitMs: number;
    p99WaitMs: number;
  }[];
}

describe("kvBudget() across processes against PostgreSQL", () => {
  before(async () => {
    cluster = await startCluster();
    dir = mkdtempSync(join(tmpdir(), "edgepool-budget-it-"));
  });
  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("8 processes with max 10 under a limit of 20 never open more than 20 connections", async () => {
    const { app, base } = setup("load");
    const runtimes: WorkerRuntime[] = [
      "deno",
      "deno",
      "deno",
      "deno",
      "deno",
      "deno",
      "node",
      "bun",
    ];
    const durationMs = 9_000;
    const startAt = Date.now() + 3_000; // all start together, once every runtime is up
    const workers = runtimes.map((runtime, i) =>
      startWorker(runtime, { ...base, name: `w${i}`, mode: "load", loops: 6, startAt, durationMs })
    );
    const connections = sampler(50, () => cluster.connections(app));
    try {
      const done = await results(workers, startAt - Date.now() + durationMs + 10_000);
      await connections.stop();
      const counts = connections.samples.map((s) => s.value);
      const most = Math.max(...counts);
      const served = done.reduce((n, d) => n + d.served, 0);
      const failed = done.reduce((n, d) => n + d.failed, 0);
      const maxWaitMs = Math.max(...done.map((d) => d.maxWaitMs));
      console.log(
        `budget: load ${durationMs} ms, ${workers.length} processes (${runtimes.join(", ")}): ` +
          `max connections seen ${most} in ${counts.length} samples; requests served ${served}, ` +
          `failed ${failed}; per process ${done.map((d) => d.served).join("/")}; ` +
          `longest wait ${maxWaitMs} ms, worst p99 ${Math.max(...done.map((d) => d.p99WaitMs))} ms`,
      );
      assert.ok(counts.length > durationMs / 100, `only ${counts.length} samples`);
      assert.ok(most <= LIMIT, `${most} connections seen for a limit of ${LIMIT}`);
      assert.ok(most >= LIMIT - 2, `the load should fill the budget; saw at most ${most}`);
      assert.equal(failed, 0, done.find((d) => d.failed > 0)?.firstError);
      for (const d of done) assert.ok(d.served > 0, `${d.name} (${d.runtime}) served nothing`);
    } finally {
      await connections.stop();
      await killAll(workers);
    }
  });

  it("the permits of a process killed with SIGKILL come back within ttlMs", async () => {
    const { app, base } = setup("kill");
    const victim = startWorker("deno", { ...base, name: "victim", mode: "hold", hold: MAX });
    const workers: Worker[] = [victim];
    const kv = "Bun" in globalThis
      ? await openKv(base.kvPath, makeLimitedV8Serializer())
      : await openKv(base.kvPath);
    const decoder = new TextDecoder();
    /** Live slots, and how many of them the victim holds. */
    const slots = async (victimId: string) => {
      let live = 0;
      let victims = 0;
      const now = Date.now();
      for await (const e of kv.list({ prefix: [...base.key, "slot"] })) {
        const [expiresAt, owner] = decoder.decode(e.value as Uint8Array).split(" ");
        if (Number(expiresAt) <= now) continue;
        live++;
        if (owner.startsWith(`${victimId}/`)) victims++;
      }
      return { live, victims };
    };
    let connections: ReturnType<typeof sampler<number>> | undefined;
    let kvSlots: ReturnType<typeof sampler<{ live: number; victims: number }>> | undefined;
    try {
      const holding = await victim.next("holding", 15_000);
      assert.equal(holding.held, MAX);
      const victimId = String(holding.budgetId);
      const runtimes: WorkerRuntime[] = ["deno", "deno", "deno", "deno", "deno", "node", "bun"];
      const durationMs = 7_000;
      const startAt = Date.now() + 2_500;
      for (const [i, runtime] of runtimes.entries()) {
        workers.push(
          startWorker(runtime, {
            ...base,
            name: `w${i}`,
            mode: "load",
            loops: 5,
            startAt,
            durationMs,
          }),
        );
      }
      connections = sampler(50, () => cluster.connections(app));
      kvSlots = sampler(25, () => slots(victimId));
      await sleep(startAt + 1_500 - Date.now()); // the others have filled the other 10 and wait
      const before = await slots(victimId);
      assert.equal(before.victims, MAX, "the victim holds its permits");
      const killedAt = Date.now();
      victim.child.kill("SIGKILL");
      await victim.exited;
      const done = await results(workers.slice(1), startAt + durationMs - Date.now() + 10_000);
      await connections.stop();
      await kvSlots.stop();
      const after = kvSlots.samples.filter((s) => s.at >= killedAt);
      const freed = after.find((s) => s.value.victims === 0);
      const full = after.find((s) => s.value.victims === 0 && s.value.live === LIMIT);
      assert.ok(freed && full, "the others never took the victim's permits");
      const freedMs = freed.at - killedAt;
      const reclaimMs = full.at - killedAt;
      const most = Math.max(...connections.samples.map((s) => s.value));
      const served = done.reduce((n, d) => n + d.served, 0);
      console.log(
        `budget: SIGKILL of a process holding ${MAX} of ${LIMIT} permits (ttlMs ${TTL_MS}): ` +
          `its permits free after ${freedMs} ms, all ${LIMIT} held by the others after ` +
          `${reclaimMs} ms; max connections seen ${most}; requests served ${served}, ` +
          `failed ${done.reduce((n, d) => n + d.failed, 0)}`,
      );
      // Free at the victim's last renewal + ttlMs: after the kill, between ttlMs − renewEveryMs
      // and ttlMs; taken by the others' polls (first in line every 50 ms) right after.
      assert.ok(freedMs >= TTL_MS - TTL_MS / 3 - 100, `freed after ${freedMs} ms: too soon`);
      assert.ok(reclaimMs <= TTL_MS + 500, `reclaimed after ${reclaimMs} ms (ttlMs ${TTL_MS})`);
      assert.ok(most <= LIMIT, `${most} connections seen for a limit of ${LIMIT}`);
      assert.equal(
        done.reduce((n, d) => n + d.failed, 0),
        0,
        done.find((d) => d.failed)?.firstError,
      );
    } finally {
      await connections?.stop();
      await kvSlots?.stop();
      await killAll(workers);
      kv.close();
    }
  });
});
