import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Histogram } from "../src/stats.ts";
import { AcquireTimeoutError, PoolExhaustedError } from "../mod.ts";
import {
  assertInvariant,
  flush,
  seededRandom,
  withClockPool,
  withFakeTime,
  withPool,
} from "./_helpers.ts";

/** The exact quantile with the histogram's definition: the value at rank ceil(q·n). */
function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1];
}

describe("Histogram", () => {
  const distributions: [string, (random: () => number) => number][] = [
    ["uniform 0–1000 ms", (random) => random() * 1_000],
    ["exponential, mean 50 ms", (random) => -50 * Math.log(1 - random())],
    ["log-uniform 1 ms – 1000 s", (random) => 10 ** (random() * 6)],
    ["bimodal 2 ms / 3 s", (random) => random() < 0.9 ? 2 + random() : 3_000 + random() * 100],
  ];
  for (const [name, draw] of distributions) {
    it(`Histogram.quantile() is within 7 % of the exact quantile (${name})`, () => {
      const random = seededRandom(name.length);
      const histogram = new Histogram();
      const values: number[] = [];
      for (let i = 0; i < 20_000; i++) {
        const v = draw(random);
        values.push(v);
        histogram.record(v);
      }
      values.sort((a, b) => a - b);
      for (const q of [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999]) {
        const exact = exactQuantile(values, q);
        const approx = histogram.quantile(q);
        // Below 1 ms the buckets are 1/16 ms wide: an absolute bound applies there.
        const tolerance = Math.max(0.07 * exact, 1 / 16);
        assert.ok(
          Math.abs(approx - exact) <= tolerance,
          `q=${q}: ${approx} vs exact ${exact}`,
        );
      }
      assert.equal(histogram.count, values.length);
      const summary = histogram.summary();
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      assert.ok(Math.abs(summary.avg - mean) <= 0.001, `avg ${summary.avg} vs ${mean}`);
      assert.equal(summary.count, values.length);
      assert.ok(Math.abs(summary.sum - mean * values.length) <= 1e-6 * summary.sum, "sum exact");
      assert.equal(summary.max, Math.round(values[values.length - 1] * 1000) / 1000);
    });
  }

  it("Histogram reports zeros when nothing was recorded", () => {
    const histogram = new Histogram();
    assert.equal(histogram.count, 0);
    assert.equal(histogram.quantile(0.5), 0);
    assert.equal(histogram.quantile(0.99), 0);
    assert.deepEqual(histogram.summary(), { avg: 0, p50: 0, p99: 0, max: 0, count: 0, sum: 0 });
  });

  it("Histogram.quantile() never reports more than the largest recording", () => {
    const histogram = new Histogram();
    histogram.record(100);
    // 100 falls in the bucket [96, 100): its midpoint would be 98, its upper edge above 100.
    histogram.record(101);
    assert.ok(histogram.quantile(1) <= 101);
    assert.ok(histogram.quantile(0.99) <= 101);
    const single = new Histogram();
    single.record(7.3);
    assert.ok(single.quantile(0.5) <= 7.3);
    assert.ok(Math.abs(single.quantile(0.5) - 7.3) <= 0.07 * 7.3);
  });

  it("Histogram records negative and NaN durations as 0 ms", () => {
    const histogram = new Histogram();
    histogram.record(-5);
    histogram.record(NaN);
    assert.equal(histogram.count, 2);
    assert.deepEqual(histogram.summary(), { avg: 0, p50: 0, p99: 0, max: 0, count: 2, sum: 0 });
  });

  it("Histogram keeps very long durations in its last bucket without overflowing", () => {
    const histogram = new Histogram();
    histogram.record(1e15); // past the table's last power of two (2^47 ms)
    histogram.record(5);
    assert.equal(histogram.count, 2);
    assert.equal(histogram.summary().max, 1e15);
    assert.ok(histogram.quantile(1) <= 1e15);
    assert.ok(Math.abs(histogram.quantile(0.5) - 5) <= 0.35);
  });
});

describe("Pool.stats()", () => {
  it("Pool.stats() reports hitRate 1 before any acquire was served", async () => {
    await withPool({ max: 2 }, async (pool) => {
      assert.equal(pool.stats().hitRate, 1);
      await Promise.resolve();
      assert.equal(pool.stats().hitRate, 1);
    });
  });

  it("Pool.stats() hitRate is the share of acquires served by an already-idle resource", async () => {
    await withPool({ max: 2 }, async (pool) => {
      const first = await pool.acquire(); // miss: had to create
      assert.equal(pool.stats().hitRate, 0);
      await first.release();
      const second = await pool.acquire(); // hit: idle
      assert.equal(pool.stats().hitRate, 0.5);
      const third = await pool.acquire(); // miss: created (the idle one is leased)
      assert.equal(pool.stats().hitRate, 1 / 3);
      await second.release();
      await third.release();
      (await pool.acquire()).release(); // hit
      assert.equal(pool.stats().hitRate, 0.5);
      assert.equal(pool.stats().acquired, 4);
    });
  });

  it("Pool.stats() counts a waiter served by a released resource as a miss", async () => {
    await withPool({ max: 1 }, async (pool) => {
      const held = await pool.acquire(); // miss
      const waiting = pool.acquire({ timeoutMs: Infinity });
      await flush();
      await held.release();
      const lease = await waiting; // hand-off, not from idle
      assert.equal(pool.stats().hitRate, 0);
      await lease.release();
    });
  });

  it("Pool.stats().waitMs reports how long acquires waited", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const held = await pool.acquire(); // waited 0 ms
        const waiting = pool.acquire({ timeoutMs: Infinity });
        await clock.tickAsync(100);
        await held.release();
        const lease = await waiting; // waited 100 ms
        const { waitMs } = pool.stats();
        assert.equal(waitMs.max, 100);
        assert.equal(waitMs.avg, 50);
        assert.ok(waitMs.p99 > 93 && waitMs.p99 <= 100, `p99 ${waitMs.p99}`);
        assert.ok(waitMs.p50 < 1, `p50 ${waitMs.p50}`);
        await lease.release();
      });
    });
  });

  it("Pool.stats().waitMs estimates a long queue's waits from a sample, without bias", async () => {
    // With 200 queued and nobody listening to events, only some waits are timed (each standing
    // for several): the figures must still match the exact ones closely.
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool) => {
        let lease = await pool.acquire();
        const queued = Array.from({ length: 200 }, () => pool.acquire({ timeoutMs: Infinity }));
        for (const next of queued) {
          await clock.tickAsync(10);
          await lease.release();
          lease = await next; // the i-th waited 10 × (i + 1) ms
        }
        await lease.release();
        const { waitMs, acquired } = pool.stats();
        assert.equal(acquired, 201);
        // Exact: 1 wait of 0 ms and 200 of 10 … 2 000 ms: avg 995, p50 1 000, max 2 000.
        assert.ok(Math.abs(waitMs.avg - 995) < 0.05 * 995, `avg ${waitMs.avg}`);
        assert.ok(Math.abs(waitMs.p50 - 1_000) < 0.1 * 1_000, `p50 ${waitMs.p50}`);
        assert.ok(waitMs.p99 > 1_800 && waitMs.p99 <= 2_000, `p99 ${waitMs.p99}`);
      });
    });
  });

  it("Pool.stats() counts each outcome in its own counter", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1, maxWaiting: 1 }, async (pool, factory) => {
        const lease = await pool.acquire();
        const timingOut = pool.acquire({ timeoutMs: 10 });
        await assert.rejects(pool.acquire(), PoolExhaustedError);
        const timedOut = assert.rejects(timingOut, AcquireTimeoutError);
        await clock.tickAsync(10);
        await timedOut;
        const controller = new AbortController();
        const aborting = pool.acquire({ signal: controller.signal });
        controller.abort(new Error("stop"));
        await assert.rejects(aborting, /stop/);
        factory.validatePlan.push("ok");
        lease.value.broken = true; // the next validation fails
        await lease.release();
        await clock.tickAsync(1_000); // past validateBypassMs
        factory.createPlan.push("fail");
        const next = pool.acquire({ timeoutMs: Infinity }); // invalid → destroyed → create fails → retry
        await clock.tickAsync(1_000);
        const fresh = await next;
        await fresh.release();
        const s = pool.stats();
        assertInvariant(s);
        assert.deepEqual(
          {
            acquired: s.acquired,
            released: s.released,
            created: s.created,
            destroyed: s.destroyed,
            timedOut: s.timedOut,
            aborted: s.aborted,
            exhausted: s.exhausted,
            createErrors: s.createErrors,
            validationFailures: s.validationFailures,
          },
          {
            acquired: 2,
            released: 2,
            created: 2,
            destroyed: 1,
            timedOut: 1,
            aborted: 1,
            exhausted: 1,
            createErrors: 1,
            validationFailures: 1,
          },
        );
      });
    });
  });

  it("Pool.stats() returns a fresh snapshot each call", async () => {
    await withPool({ max: 2, min: 0 }, async (pool) => {
      const before = pool.stats();
      const lease = await pool.acquire();
      assert.equal(before.active, 0);
      assert.equal(pool.stats().active, 1);
      assert.notEqual(pool.stats(), pool.stats());
      assert.deepEqual([before.min, before.max], [0, 2]);
      await lease.release();
    });
  });
});
