/**
 * kvBudget() against a real KV database file in a temp dir: Deno.openKv where the runtime has
 * it, else the npm @deno/kv client (its native SQLite binding; on Bun with an explicit
 * serializer). Several handles on one file stand for several processes; a handle whose writes
 * fail stands for a crashed or cut-off process. Logic with deadlines runs under a fake clock;
 * the real-time tests measure what the fake clock cannot (polls that do real I/O).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { makeLimitedV8Serializer, openKv as npmOpenKv } from "@deno/kv";
import { AcquireTimeoutError, type Factory, Pool, PoolError, type PoolEvent } from "../mod.ts";
import {
  type BudgetKv,
  type BudgetKvAtomic,
  type BudgetKvKeyPart,
  type KvBudget,
  kvBudget,
} from "../src/budget/deno_kv.ts";
import { fakeTime } from "./_helpers.ts";

type Handle = BudgetKv & { close(): void };

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const realSetTimeout = globalThis.setTimeout;
const sleep = (ms: number) => new Promise<void>((resolve) => realSetTimeout(resolve, ms));
const signal = () => new AbortController().signal;
const noop = () => {};

let dir: string;
const handles: Handle[] = [];
let keys = 0;

/** Opens the test database file: Deno.openKv where it exists, else @deno/kv. */
async function open(name = "budget.db"): Promise<Handle> {
  const path = join(dir, name);
  const builtin = (globalThis as { Deno?: { openKv?: (p: string) => Promise<Handle> } }).Deno
    ?.openKv;
  const kv: Handle = typeof builtin === "function"
    ? await builtin(path)
    : "Bun" in globalThis
    ? await npmOpenKv(path, makeLimitedV8Serializer())
    : await npmOpenKv(path);
  handles.push(kv);
  return kv;
}

/** A fresh key prefix per test, so tests never see each other's slots. */
function freshKey(): BudgetKvKeyPart[] {
  return ["budget-test", ++keys];
}

/** An atomic operation whose commit fails while its handle is switched off. */
class FaultyAtomic implements BudgetKvAtomic {
  readonly #op: BudgetKvAtomic;
  readonly #state: { down: boolean };
  constructor(op: BudgetKvAtomic, state: { down: boolean }) {
    this.#op = op;
    this.#state = state;
  }
  check(...checks: { key: readonly BudgetKvKeyPart[]; versionstamp: string | null }[]): this {
    this.#op.check(...checks);
    return this;
  }
  set(key: readonly BudgetKvKeyPart[], value: Uint8Array, options?: { expireIn?: number }): this {
    this.#op.set(key, value, options);
    return this;
  }
  delete(key: readonly BudgetKvKeyPart[]): this {
    this.#op.delete(key);
    return this;
  }
  commit(): Promise<{ ok: boolean; versionstamp?: string }> {
    if (this.#state.down) return Promise.reject(new Error("KV unavailable"));
    return this.#op.commit();
  }
}

/** A handle that can be cut off: `state.down = true` fails every write and read. */
function faulty(kv: BudgetKv): { kv: BudgetKv; state: { down: boolean } } {
  const state = { down: false };
  return {
    state,
    kv: {
      atomic: () => new FaultyAtomic(kv.atomic(), state),
      list(selector) {
        if (state.down) {
          return {
            [Symbol.asyncIterator]: () => ({
              next: () => Promise.reject(new Error("KV unavailable")),
            }),
          };
        }
        return kv.list(selector);
      },
    },
  };
}

/** Resolves with the ms until `listener` is first called; rejects after `timeoutMs`. */
function nextAvailable(budget: KvBudget, timeoutMs: number): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = realSetTimeout(() => {
      stop();
      reject(new Error(`onAvailable did not fire within ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = budget.onAvailable(() => {
      clearTimeout(timer);
      stop();
      resolve(Date.now() - started);
    });
  });
}

/** A factory whose resources are counted across every pool that uses it. */
function countingFactory(tally: { alive: number; most: number; created: number }): Factory<object> {
  return {
    create: async () => {
      tally.alive++;
      tally.created++;
      tally.most = Math.max(tally.most, tally.alive);
      await sleep(1);
      return {};
    },
    destroy: async () => {
      await sleep(1);
      tally.alive--;
    },
  };
}

describe("kvBudget()", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "edgepool-budget-"));
  });
  after(() => {
    for (const kv of handles.splice(0)) kv.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("validates its options", async () => {
    const kv = await open();
    const ok = { kv, key: ["b"], limit: 2, ttlMs: 1_000 };
    assert.throws(() => kvBudget(null as never), TypeError);
    assert.throws(() => kvBudget({ ...ok, kv: {} as never }), TypeError);
    assert.throws(() => kvBudget({ ...ok, key: "b" as never }), TypeError);
    assert.throws(() => kvBudget({ ...ok, key: [{}] as never }), TypeError);
    assert.throws(() => kvBudget({ ...ok, limit: "2" as never }), TypeError);
    for (const v of [0, -1, 1.5, NaN, Infinity]) {
      assert.throws(() => kvBudget({ ...ok, limit: v }), RangeError, `limit ${v}`);
      assert.throws(() => kvBudget({ ...ok, ttlMs: v }), RangeError, `ttlMs ${v}`);
      assert.throws(() => kvBudget({ ...ok, renewEveryMs: v }), RangeError, `renewEveryMs ${v}`);
      assert.throws(() => kvBudget({ ...ok, pollMs: v }), RangeError, `pollMs ${v}`);
    }
    assert.throws(() => kvBudget({ ...ok, renewEveryMs: 1_000 }), /less than ttlMs/);
    assert.throws(() => kvBudget({ ...ok, watch: "yes" as never }), TypeError);
    assert.throws(() => kvBudget({ ...ok, kv: faulty(kv).kv, watch: true }), /has no watch/);
    assert.equal(kvBudget(ok).limit, 2);
  });

  it("never grants more than limit permits to concurrent tryAcquire from several handles", async () => {
    const key = freshKey();
    const budgets = await Promise.all(
      [1, 2, 3, 4].map(async () =>
        kvBudget({ kv: await open(), key, limit: 5, ttlMs: 10_000, pollMs: 10_000 })
      ),
    );
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => budgets[i % 4].tryAcquire(signal(), noop)),
      );
      const granted = results.filter((p) => p !== undefined);
      assert.equal(granted.length, 5, `round ${round}: ${granted.length} permits for a limit of 5`);
      assert.equal(await budgets[0].inUse(), 5);
      assert.equal(budgets.reduce((n, b) => n + b.held, 0), 5);
      await Promise.all(granted.map((p) => p!.release()));
      assert.equal(await budgets[1].inUse(), 0);
      await sleep(150); // the losers left the line (nobody here waits for them)
    }
  });

  it("release() frees the permit for another handle, and only once", async () => {
    const key = freshKey();
    const a = kvBudget({ kv: await open(), key, limit: 1, ttlMs: 10_000 });
    const b = kvBudget({ kv: await open(), key, limit: 1, ttlMs: 10_000 });
    const permit = await a.tryAcquire(signal(), noop);
    assert.ok(permit);
    assert.equal(await b.tryAcquire(signal(), noop), undefined);
    await permit.release();
    await permit.release(); // a no-op
    assert.equal(a.held, 0);
    const next = await b.tryAcquire(signal(), noop);
    assert.ok(next, "b takes the permit a released");
    assert.equal(await a.inUse(), 1);
    await next.release();
  });

  it("tryAcquire() rejects with signal.reason when aborted, and keeps no permit", async () => {
    const budget = kvBudget({ kv: await open(), key: freshKey(), limit: 1, ttlMs: 10_000 });
    const controller = new AbortController();
    controller.abort(new Error("gone"));
    await assert.rejects(budget.tryAcquire(controller.signal, noop), /gone/);
    assert.equal(budget.held, 0);
    assert.equal(await budget.inUse(), 0);
  });

  it("an abandoned holder's permits are free again after ttlMs, not before (fake clock)", async () => {
    const clock = fakeTime();
    try {
      const key = freshKey();
      const crashed = faulty(await open());
      // KV's own expireIn (the same ttlMs) runs on the real clock: a ttl far longer than the
      // test's real duration keeps it from deleting the slots first on a loaded machine.
      const a = kvBudget({ kv: crashed.kv, key, limit: 2, ttlMs: 60_000, pollMs: 50 });
      const b = kvBudget({ kv: await open(), key, limit: 2, ttlMs: 60_000, pollMs: 50 });
      assert.ok(await a.tryAcquire(signal(), noop));
      assert.ok(await a.tryAcquire(signal(), noop));
      crashed.state.down = true; // a stops renewing and never releases
      assert.equal(await b.tryAcquire(signal(), noop), undefined);
      await clock.tickAsync(59_999);
      assert.equal(await b.tryAcquire(signal(), noop), undefined, "taken before expiry");
      assert.equal(await b.inUse(), 2);
      await clock.tickAsync(1);
      assert.equal(await b.inUse(), 0);
      const first = await b.tryAcquire(signal(), noop);
      const second = await b.tryAcquire(signal(), noop);
      assert.ok(first && second, "b takes both expired permits");
      await first.release();
      await second.release();
    } finally {
      clock.uninstall();
    }
  });

  it("renews its permits, so they outlive ttlMs while held", async () => {
    const key = freshKey();
    const a = kvBudget({ kv: await open(), key, limit: 1, ttlMs: 500, renewEveryMs: 100 });
    const b = kvBudget({ kv: await open(), key, limit: 1, ttlMs: 500 });
    let lost = 0;
    const permit = await a.tryAcquire(signal(), () => lost++);
    assert.ok(permit);
    await sleep(1_000);
    assert.equal(await b.tryAcquire(signal(), noop), undefined, "still a's after 1 000 ms");
    assert.equal(lost, 0);
    await permit.release();
  });

  it("calls onLost at the last renewal before expiry when renewals keep failing (fake clock)", async () => {
    // The default renewEveryMs is ttlMs / 4: renewals at 250, 500 and 750 ms.
    const clock = fakeTime();
    try {
      const cut = faulty(await open());
      const budget = kvBudget({ kv: cut.kv, key: freshKey(), limit: 2, ttlMs: 1_000 });
      let lost = 0;
      const permit = await budget.tryAcquire(signal(), () => lost++);
      assert.ok(permit);
      cut.state.down = true;
      await clock.tickAsync(749); // the renewals at 250 and 500 failed; each left time to retry
      assert.equal(lost, 0);
      // At 750 the permit has 250 ms left, less than two renewal intervals: given up now.
      await clock.tickAsync(1);
      assert.equal(lost, 1, "lost a renewal interval before its expiry at 1 000 ms");
      assert.equal(budget.held, 0);
      await clock.tickAsync(5_000);
      assert.equal(lost, 1, "called once");
      await permit.release(); // no-op against a KV that is down: never rejects
    } finally {
      clock.uninstall();
    }
  });

  it("with the default renewEveryMs, survives one failed renewal on real (late) timers", async () => {
    const cut = faulty(await open());
    const budget = kvBudget({ kv: cut.kv, key: freshKey(), limit: 1, ttlMs: 1_000 });
    let lost = 0;
    const permit = await budget.tryAcquire(signal(), () => lost++);
    assert.ok(permit);
    cut.state.down = true;
    await sleep(400); // the renewal due at 250 ms fails, whenever its timer actually fires
    cut.state.down = false;
    await sleep(1_200); // renewals at 500, 750, ... succeed
    assert.equal(lost, 0, "one failure is retried, not given up");
    assert.equal(budget.held, 1);
    await permit.release();
  });

  it("keeps a permit whose renewals failed for a while once the KV answers again", async () => {
    const cut = faulty(await open());
    const budget = kvBudget({
      kv: cut.kv,
      key: freshKey(),
      limit: 1,
      ttlMs: 1_000,
      renewEveryMs: 100,
    });
    let lost = 0;
    const permit = await budget.tryAcquire(signal(), () => lost++);
    assert.ok(permit);
    cut.state.down = true;
    await sleep(450); // four or five failed renewals
    cut.state.down = false;
    await sleep(1_500);
    assert.equal(lost, 0);
    assert.equal(budget.held, 1);
    await permit.release();
  });

  it("calls onLost at once when a renewal finds the slot taken over", async () => {
    const kv = await open();
    const key = freshKey();
    const budget = kvBudget({ kv, key, limit: 1, ttlMs: 5_000, renewEveryMs: 30 });
    let onLost!: () => void;
    const lost = new Promise<void>((resolve) => onLost = resolve);
    assert.ok(await budget.tryAcquire(signal(), () => onLost()));
    assert.equal(budget.held, 1);
    // Another process took the slot (as after an expiry): a's check on its versionstamp fails.
    await kv.atomic().set([...key, "slot", 0], new TextEncoder().encode(`${Date.now() + 5_000} x`))
      .commit();
    await Promise.race([lost, sleep(2_000).then(() => assert.fail("onLost not called"))]);
    assert.equal(budget.held, 0);
  });

  it("onAvailable() fires when another handle releases", async () => {
    const key = freshKey();
    const a = kvBudget({ kv: await open(), key, limit: 1, ttlMs: 10_000, pollMs: 20 });
    const b = kvBudget({ kv: await open(), key, limit: 1, ttlMs: 10_000, pollMs: 20 });
    const permit = await a.tryAcquire(signal(), noop);
    assert.ok(permit);
    assert.equal(await b.tryAcquire(signal(), noop), undefined);
    const waited = nextAvailable(b, 2_000);
    await sleep(50);
    await permit.release();
    await waited;
    const next = await b.tryAcquire(signal(), noop);
    assert.ok(next);
    await next.release();
  });

  it("onAvailable() fires within ttlMs when a crashed holder's permits expire", async () => {
    const key = freshKey();
    const ttlMs = 600;
    const crashed = faulty(await open());
    const a = kvBudget({ kv: crashed.kv, key, limit: 2, ttlMs, renewEveryMs: 200 });
    const b = kvBudget({ kv: await open(), key, limit: 2, ttlMs, pollMs: 50 });
    assert.ok(await a.tryAcquire(signal(), noop));
    assert.ok(await a.tryAcquire(signal(), noop));
    await sleep(250); // a renewed once
    crashed.state.down = true;
    const crashedAt = Date.now();
    assert.equal(await b.tryAcquire(signal(), noop), undefined);
    await nextAvailable(b, 3_000);
    const permit = await b.tryAcquire(signal(), noop);
    const reclaimMs = Date.now() - crashedAt;
    assert.ok(permit, "b takes an expired permit");
    // Free at the last renewal + ttlMs: no sooner than ttlMs − renewEveryMs after the crash.
    assert.ok(reclaimMs >= ttlMs - 200 - 10, `reclaimed after ${reclaimMs} ms: too soon`);
    assert.ok(reclaimMs <= ttlMs + 250, `reclaimed after ${reclaimMs} ms: later than ttlMs`);
    await permit.release();
  });

  it("serves the process that has waited longest first, one permit per turn", async () => {
    const key = freshKey();
    const options = { key, limit: 2, ttlMs: 10_000, pollMs: 5_000 };
    const holder = kvBudget({ kv: await open(), ...options });
    const first = kvBudget({ kv: await open(), ...options });
    const second = kvBudget({ kv: await open(), ...options });
    const held = [
      await holder.tryAcquire(signal(), noop),
      await holder.tryAcquire(signal(), noop),
    ];
    assert.equal(await first.tryAcquire(signal(), noop), undefined); // first in line
    await sleep(5);
    assert.equal(await second.tryAcquire(signal(), noop), undefined); // second in line
    await held[0]!.release();
    // One permit free and one process ahead: the holder and the second in line yield.
    assert.equal(await holder.tryAcquire(signal(), noop), undefined);
    assert.equal(await second.tryAcquire(signal(), noop), undefined);
    const one = await first.tryAcquire(signal(), noop);
    assert.ok(one, "the first in line gets it");
    await held[1]!.release();
    // The first in line was served and left the line; the holder queued after the second.
    assert.equal(await first.tryAcquire(signal(), noop), undefined);
    const two = await second.tryAcquire(signal(), noop);
    assert.ok(two, "then the second");
    await one.release();
    await two.release();
  });
});

describe("a Pool with kvBudget()", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "edgepool-budget-"));
  });
  after(() => {
    for (const kv of handles.splice(0)) kv.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const shared of [true, false]) {
    const how = shared ? "one budget object" : "a budget per KV handle";
    it(`two pools sharing a budget of 2 (${how}) never hold more than 2 resources`, async () => {
      const key = freshKey();
      const one = kvBudget({ kv: await open(), key, limit: 2, ttlMs: 10_000, pollMs: 10 });
      const budgets = [
        one,
        shared ? one : kvBudget({
          kv: await open(),
          key,
          limit: 2,
          ttlMs: 10_000,
          pollMs: 10,
        }),
      ];
      const tally = { alive: 0, most: 0, created: 0 };
      // Permits go back only when resources are destroyed: an idle timeout lets a pool that
      // has no work give its permits to the other.
      const pools = budgets.map((budget) =>
        new Pool(countingFactory(tally), {
          max: 2,
          maxUses: 3,
          idleTimeoutMs: 50,
          reapIntervalMs: 10,
          budget,
          acquireTimeoutMs: 10_000,
        })
      );
      try {
        let served = 0;
        await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            pools[i % 2].use(async () => {
              await sleep(2);
              served++;
            })),
        );
        assert.equal(served, 60);
        assert.ok(tally.most <= 2, `${tally.most} resources at once for a budget of 2`);
        assert.ok(tally.created >= 20, `resources recycled: ${tally.created} created`);
        assert.ok(pools.every((p) => p.stats().created > 0), "both pools were served");
      } finally {
        await Promise.all(pools.map((p) => p.close({ timeoutMs: 1_000 })));
      }
      assert.equal(await one.inUse(), 0, "every permit went back");
    });

    it(`a waiter is served when the other pool's resource is destroyed (${how})`, async () => {
      const key = freshKey();
      const one = kvBudget({ kv: await open(), key, limit: 2, ttlMs: 10_000, pollMs: 20 });
      const other = shared
        ? one
        : kvBudget({ kv: await open(), key, limit: 2, ttlMs: 10_000, pollMs: 20 });
      const a = new Pool({ create: () => ({}), destroy: noop }, { max: 2, budget: one });
      const b = new Pool({ create: () => ({}), destroy: noop }, { max: 2, budget: other });
      try {
        const leases = [await a.acquire(), await a.acquire()];
        const waiting = b.acquire({ timeoutMs: 5_000 });
        await sleep(60);
        assert.equal(b.stats().waiting, 1);
        await leases[0].destroy();
        const lease = await waiting;
        assert.equal(b.stats().created, 1);
        await lease.release();
        await leases[1].release();
      } finally {
        await Promise.all([a.close({ timeoutMs: 1_000 }), b.close({ timeoutMs: 1_000 })]);
      }
    });
  }

  it("an acquire that times out says the shared budget had no free permit", async () => {
    const key = freshKey();
    const one = kvBudget({ kv: await open(), key, limit: 1, ttlMs: 10_000, pollMs: 20 });
    const two = kvBudget({ kv: await open(), key, limit: 1, ttlMs: 10_000, pollMs: 20 });
    const a = new Pool({ create: () => ({}), destroy: noop }, { max: 2, budget: one });
    const b = new Pool({ create: () => ({}), destroy: noop }, { max: 2, budget: two });
    try {
      const lease = await a.acquire();
      const error = await b.acquire({ timeoutMs: 200 }).then(
        () => assert.fail("acquired beyond the budget"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof AcquireTimeoutError);
      assert.match(String((error.cause as Error)?.message), /the shared budget had no free permit/);
      assert.ok(error.cause instanceof PoolError);
      assert.equal(error.cause.stats, error.stats, "the same snapshot as the timeout's");
      assert.equal(b.stats().createErrors, 0, "a full budget is not a create error");
      await lease.release();
    } finally {
      await Promise.all([a.close({ timeoutMs: 1_000 }), b.close({ timeoutMs: 1_000 })]);
    }
  });

  it("retires an idle resource whose permit was lost, and recovers when the KV answers", async () => {
    const cut = faulty(await open());
    const budget = kvBudget({ kv: cut.kv, key: freshKey(), limit: 1, ttlMs: 400 });
    const events: PoolEvent[] = [];
    const pool = new Pool({ create: () => ({}), destroy: noop }, {
      max: 1,
      budget,
      onEvent: (e) => events.push(e),
    });
    try {
      await pool.use(noop);
      cut.state.down = true;
      await sleep(800);
      const destroyed = events.filter((e) => e.type === "destroy");
      assert.deepEqual(destroyed.map((e) => e.type === "destroy" && e.reason), ["evicted"]);
      assert.equal(pool.stats().total, 0);
      cut.state.down = false;
      await pool.use(noop); // its slot expired meanwhile: taken again
      assert.equal(pool.stats().created, 2);
    } finally {
      await pool.close({ timeoutMs: 1_000 });
    }
  });

  it("reports the KV's error as the cause when the budget cannot be read", async () => {
    const cut = faulty(await open());
    const budget = kvBudget({ kv: cut.kv, key: freshKey(), limit: 1, ttlMs: 10_000 });
    const pool = new Pool({ create: () => ({}), destroy: noop }, { max: 1, budget });
    try {
      cut.state.down = true;
      const error = await pool.acquire({ timeoutMs: 200 }).then(
        () => assert.fail("acquired without a budget"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof AcquireTimeoutError);
      assert.match(String((error.cause as Error)?.message), /KV unavailable/);
    } finally {
      await pool.close({ timeoutMs: 1_000 });
    }
  });
});

describe("kvBudget() with Deno.openKv", () => {
  it("holds the limit and wakes waiters across handles (deno --unstable-kv)", () => {
    const work = mkdtempSync(join(tmpdir(), "edgepool-budget-deno-"));
    try {
      const deno = join(ROOT, "node_modules", ".bin", "deno");
      const r = spawnSync(
        deno,
        ["run", "-A", "--unstable-kv", "tests/fixtures/budget_deno_openkv.ts", join(work, "kv.db")],
        {
          cwd: ROOT,
          encoding: "utf8",
          timeout: 30_000,
          env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
        },
      );
      assert.equal(r.status, 0, r.stderr + r.stdout);
      const report = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
      assert.equal(report.nativeKv, true);
      assert.equal(report.granted, 5, "permits for a limit of 5 under 40 concurrent tryAcquire");
      assert.ok(report.mostResources <= 2, `${report.mostResources} resources for a budget of 2`);
      assert.equal(report.served, 40);
      assert.ok(report.wakeMs < 1_000, `woken ${report.wakeMs} ms after the release`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
