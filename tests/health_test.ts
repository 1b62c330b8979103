import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Pool, type PoolStats } from "../mod.ts";
import { HEALTH_DEFAULTS, poolHealth } from "../src/health.ts";
import {
  assertPending,
  countingSignal,
  FakeFactory,
  flush,
  statsSnapshot,
  withFakeTime,
  withPool,
  withPoolSync,
} from "./_helpers.ts";

const codes = (s: PoolStats, t?: Parameters<typeof poolHealth>[1]) =>
  poolHealth(s, t).alerts.map((a) => a.code);

describe("Pool.health()", () => {
  it("Pool.health() of a fresh pool is healthy with no alert", async () => {
    await withPoolSync({}, (pool) => {
      assert.deepEqual(pool.health(), {
        healthy: true,
        utilization: 0,
        waitMs: { avg: 0, p50: 0, p99: 0, max: 0, count: 0, sum: 0 },
        hitRate: 1,
        alerts: [],
      });
    });
  });

  it("Pool.health() raises exhausted when no resource is idle and acquires are queued", async () => {
    await withPool({ max: 2 }, async (pool) => {
      const a = await pool.acquire();
      const b = await pool.acquire();
      const queued = [pool.acquire(), pool.acquire(), pool.acquire()];
      const health = pool.health();
      assert.equal(health.healthy, false);
      assert.deepEqual(health.alerts.map((x) => x.code), ["exhausted", "high-utilization"]);
      const message = health.alerts[0].message;
      assert.match(message, /3 waiting/);
      assert.match(message, /2 of max 2 in use/);
      await a.release();
      await b.release();
      for (const q of queued) await (await q).release();
      assert.equal(pool.health().healthy, true);
    });
  });

  it("Pool.health() raises high-utilization above the threshold, not at it", () => {
    assert.deepEqual(codes(statsSnapshot({ active: 9, max: 10 })), []);
    assert.deepEqual(codes(statsSnapshot({ active: 10, max: 10 })), ["high-utilization"]);
    assert.deepEqual(codes(statsSnapshot({ active: 6, max: 10 }), { utilization: 0.5 }), [
      "high-utilization",
    ]);
    const [alert] = poolHealth(statsSnapshot({ active: 10, max: 10 })).alerts;
    assert.equal(
      alert.message,
      "high utilization: 10 of max 10 resources in use (100 %, threshold 90 %)",
    );
    assert.equal(poolHealth(statsSnapshot({ active: 3, max: 4 })).utilization, 0.75);
  });

  it("Pool.health() raises slow-wait when the p99 acquire wait is above the threshold", async () => {
    await withFakeTime(async (clock) => {
      await withPool({ max: 1 }, async (pool) => {
        const held = await pool.acquire();
        const queued = pool.acquire();
        await clock.tickAsync(1_500);
        await held.release();
        await (await queued).release();
        const health = pool.health();
        assert.deepEqual(health.alerts.map((a) => a.code), ["slow-wait"]);
        assert.deepEqual(health.waitMs, pool.stats().waitMs);
        assert.match(health.alerts[0].message, /p99 wait is 1\d{3}(\.\d+)? ms \(threshold 1000 ms/);
        assert.match(health.alerts[0].message, /max 1500 ms/);
        assert.deepEqual(pool.health({ waitP99Ms: 2_000 }).alerts, []);
      });
    });
    assert.deepEqual(
      codes(statsSnapshot({
        waitMs: { avg: 1, p50: 1, p99: 1_000, max: 1_000, count: 10, sum: 1_009 },
      })),
      [],
    );
  });

  it("Pool.health() raises low-hit-rate only once minAcquires acquires were served", () => {
    assert.deepEqual(codes(statsSnapshot({ acquired: 19, hitRate: 0.5 })), []);
    assert.deepEqual(codes(statsSnapshot({ acquired: 20, hitRate: 0.5 })), ["low-hit-rate"]);
    assert.deepEqual(codes(statsSnapshot({ acquired: 20, hitRate: 0.8 })), []);
    assert.deepEqual(codes(statsSnapshot({ acquired: 5, hitRate: 0.5 }), { minAcquires: 5 }), [
      "low-hit-rate",
    ]);
    assert.equal(
      poolHealth(statsSnapshot({ acquired: 40, hitRate: 0.45 })).alerts[0].message,
      "low hit rate: 45 % of 40 acquires found an idle resource (threshold 80 %)",
    );
  });

  it("Pool.health() raises create-errors above 10 % of the creates attempted", async () => {
    assert.deepEqual(codes(statsSnapshot({ created: 9, createErrors: 1 })), []);
    assert.deepEqual(codes(statsSnapshot({ created: 9, createErrors: 2 })), ["create-errors"]);
    assert.equal(
      poolHealth(statsSnapshot({ created: 9, createErrors: 2 })).alerts[0].message,
      "create errors: 2 of 11 creates failed (18.2 %, threshold 10 %)",
    );
    assert.deepEqual(
      codes(statsSnapshot({ created: 9, createErrors: 2 }), { createErrorRate: 0.2 }),
      [],
    );

    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = ["fail"];
      await withPool({}, async (pool) => {
        const acquiring = pool.acquire();
        await clock.tickAsync(100); // past the backoff
        await (await acquiring).release();
        const health = pool.health();
        assert.deepEqual(health.alerts.map((a) => a.code), ["create-errors"]);
        assert.match(health.alerts[0].message, /1 of 2 creates failed \(50 %/);
      }, factory);
    });
  });

  it("Pool.health() raises validation-failures above 10 % of the validations", () => {
    assert.deepEqual(codes(statsSnapshot({ validations: 10, validationFailures: 1 })), []);
    assert.deepEqual(codes(statsSnapshot({ validations: 10, validationFailures: 2 })), [
      "validation-failures",
    ]);
    assert.equal(
      poolHealth(statsSnapshot({ validations: 10, validationFailures: 2 })).alerts[0].message,
      "validation failures: 2 of 10 validations failed (20 %, threshold 10 %)",
    );
    assert.deepEqual(
      codes(statsSnapshot({ validations: 10, validationFailures: 2 }), {
        validationFailureRate: 0.5,
      }),
      [],
    );
  });

  it("Pool.health() is healthy exactly when there is no alert", () => {
    const sick = poolHealth(statsSnapshot({ active: 10, idle: 0, waiting: 1, createErrors: 5 }));
    assert.equal(sick.healthy, false);
    assert.deepEqual(sick.alerts.map((a) => a.code), [
      "exhausted",
      "high-utilization",
      "create-errors",
    ]);
    for (const alert of sick.alerts) assert.match(alert.message, /\d/, "messages carry numbers");
  });

  it("Pool.health() validates its thresholds", async () => {
    await withPoolSync({}, (pool) => {
      assert.throws(() => pool.health({ nope: 1 } as never), TypeError);
      // Names every object inherits are not thresholds either.
      for (const key of ["toString", "constructor", "valueOf", "__proto__"]) {
        const thresholds = JSON.parse(`{"${key}": 1}`);
        assert.throws(() => pool.health(thresholds), {
          name: "TypeError",
          message: `health(): unknown threshold "${key}"`,
        });
      }
      assert.throws(() => pool.health(null as never), TypeError);
      for (const v of [-0.1, 1.5, NaN]) {
        assert.throws(() => pool.health({ utilization: v }), RangeError, String(v));
        assert.throws(() => pool.health({ hitRate: v }), RangeError, String(v));
        assert.throws(() => pool.health({ createErrorRate: v }), RangeError, String(v));
        assert.throws(() => pool.health({ validationFailureRate: v }), RangeError, String(v));
      }
      for (const v of [-1, NaN]) {
        assert.throws(() => pool.health({ waitP99Ms: v }), RangeError, String(v));
      }
      for (const v of [-1, 1.5, NaN, Infinity]) {
        assert.throws(() => pool.health({ minAcquires: v }), RangeError, String(v));
      }
      assert.throws(() => pool.health({ utilization: "0.5" as never }), TypeError);
      assert.equal(pool.health({ utilization: undefined }).healthy, true);
    });
  });

  it("Pool.health() defaults are the documented ones", () => {
    assert.deepEqual({ ...HEALTH_DEFAULTS }, {
      utilization: 0.9,
      waitP99Ms: 1_000,
      hitRate: 0.8,
      minAcquires: 20,
      createErrorRate: 0.1,
      validationFailureRate: 0.1,
    });
    assert.ok(Object.isFrozen(HEALTH_DEFAULTS));
  });
});

describe("Pool.watch()", () => {
  it("Pool.watch() yields a snapshot at once, then one per interval", async () => {
    await withFakeTime(async (clock) => {
      await withPool({}, async (pool) => {
        const watch = pool.watch({ intervalMs: 1_000 });
        const first = await watch.next();
        assert.deepEqual(first, { value: pool.stats(), done: false });
        const lease = await pool.acquire();
        const second = watch.next();
        await assertPending(second);
        await clock.tickAsync(999);
        await assertPending(second);
        await clock.tickAsync(1);
        const { value } = await second;
        assert.equal(value?.active, 1);
        await lease.release();
        await watch.return?.();
      });
    });
  });

  it("Pool.watch() folds ticks missed by a slow reader into one fresh snapshot", async () => {
    await withFakeTime(async (clock) => {
      await withPool({}, async (pool) => {
        const watch = pool.watch({ intervalMs: 1_000 });
        await watch.next();
        await clock.tickAsync(3_500); // three ticks, nobody reading
        const lease = await pool.acquire();
        const late = await watch.next();
        assert.equal(late.value?.active, 1, "taken when read, not when the tick fired");
        const next = watch.next();
        await assertPending(next);
        await clock.tickAsync(500);
        assert.equal((await next).done, false);
        await lease.release();
        await watch.return?.();
      });
    });
  });

  it("Pool.watch() is lazy and clears its interval on break", async () => {
    await withFakeTime(async (clock) => {
      await withPool({}, async (pool) => {
        const before = clock.countTimers();
        const watch = pool.watch({ intervalMs: 1_000 });
        assert.equal(clock.countTimers(), before, "no timer before the first read");
        let reads = 0;
        for await (const stats of watch) {
          assert.equal(clock.countTimers(), before + 1);
          assert.equal(typeof stats.total, "number");
          if (++reads === 1) {
            await clock.tickAsync(1_000);
            continue;
          }
          break;
        }
        assert.equal(reads, 2);
        assert.equal(clock.countTimers(), before);
        assert.deepEqual(await watch.next(), { value: undefined, done: true });
      });
    });
  });

  it("Pool.watch() ends when the signal aborts and detaches its listener", async () => {
    await withFakeTime(async (clock) => {
      await withPool({}, async (pool) => {
        const { controller, signal, listeners } = countingSignal();
        const watch = pool.watch({ intervalMs: 1_000, signal });
        const before = clock.countTimers();
        await watch.next();
        assert.equal(listeners(), 1);
        const pending = watch.next();
        controller.abort();
        assert.deepEqual(await pending, { value: undefined, done: true });
        assert.equal(listeners(), 0);
        assert.equal(clock.countTimers(), before, "the interval is cleared");
      });
    });
  });

  it("Pool.watch() with an aborted signal ends at once", async () => {
    await withPool({}, async (pool) => {
      const watch = pool.watch({ intervalMs: 1_000, signal: AbortSignal.abort() });
      assert.deepEqual(await watch.next(), { value: undefined, done: true });
    });
  });

  it("Pool.watch() ends once the pool has closed", async () => {
    await withFakeTime(async (clock) => {
      const pool = new Pool(new FakeFactory(), { min: 1 });
      await pool.ready();
      const timersBefore = clock.countTimers();
      const watch = pool.watch({ intervalMs: 1_000 });
      assert.equal((await watch.next()).value?.idle, 1);
      const pending = watch.next();
      await pool.close();
      assert.deepEqual(await pending, { value: undefined, done: true });
      await flush();
      assert.equal(clock.countTimers(), 0, `timers left (had ${timersBefore} with the reaper)`);
    });
  });

  it("Pool.watch() of a pool already closed ends at once, with no snapshot", async () => {
    await withFakeTime(async (clock) => {
      const pool = new Pool(new FakeFactory(), { min: 1 });
      await pool.ready();
      const closing = pool.close();
      const watch = pool.watch({ intervalMs: 1_000 });
      assert.deepEqual(await watch.next(), { value: undefined, done: true });
      await closing;
      const after = pool.watch({ intervalMs: 1_000 });
      assert.deepEqual(await after.next(), { value: undefined, done: true });
      await flush();
      assert.equal(clock.countTimers(), 0);
    });
  });

  it("Pool.watch() validates intervalMs and the signal", async () => {
    await withPoolSync({}, (pool) => {
      for (const intervalMs of [0, -1, 0.5, NaN, Infinity]) {
        assert.throws(() => pool.watch({ intervalMs }), RangeError, String(intervalMs));
      }
      assert.throws(() => pool.watch({} as never), TypeError);
      assert.throws(() => pool.watch(undefined as never), TypeError);
      assert.throws(() => pool.watch({ intervalMs: 10, signal: {} as AbortSignal }), TypeError);
    });
  });
});
