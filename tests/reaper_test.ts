/**
 * The reaper: one unref'd interval per pool that runs only while the pool holds something,
 * idle timeout above `min`, keepalive checks, `min` upkeep with create backoff, leak
 * detection, and a clock that neither a leap forward nor a wall-clock change can fool. Time is
 * fake throughout, except in the process-exit checks, which run real scripts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Lease, Pool, type PoolEvent } from "../mod.ts";
import {
  closeUnderFakeTime,
  destroys,
  eventsOf,
  FakeFactory,
  type FakeResource,
  fakeTime,
  flush,
  leaseMany,
  makeError,
  releaseAll,
  runScript,
  type Runtime,
  withTimedPool,
} from "./_helpers.ts";

/** Asserts that no event carries a negative duration. */
function assertNoNegativeDurations(events: PoolEvent[]): void {
  for (const e of events) {
    for (const key of ["waitedMs", "heldMs", "tookMs"] as const) {
      const value = (e as Partial<Record<typeof key, number>>)[key];
      if (value !== undefined) assert.ok(value >= 0, `${e.type}.${key} is ${value}`);
    }
  }
}

describe("reaper interval", () => {
  it("Pool runs one unref'd setInterval, only while it holds resources", async () => {
    const clock = fakeTime();
    const fakeSetInterval = globalThis.setInterval as unknown as (...args: unknown[]) => unknown;
    const periods: unknown[] = [];
    let unrefs = 0;
    globalThis.setInterval = ((...args: unknown[]) => {
      periods.push(args[1]);
      const handle = fakeSetInterval(...args) as { unref?: () => unknown };
      const unref = handle.unref;
      if (typeof unref === "function") {
        handle.unref = () => (unrefs++, unref.call(handle));
      }
      return handle;
    }) as unknown as typeof setInterval;
    const pool = new Pool(new FakeFactory(), {
      reapIntervalMs: 250,
      idleTimeoutMs: 10_000,
      maxLifetimeMs: 0,
    });
    try {
      await clock.tickAsync(5_000);
      assert.equal(clock.countTimers(), 0, "no timer while the pool is empty");

      const leases = await leaseMany(pool, 3);
      assert.deepEqual(periods, [250], "one interval for three resources");
      assert.equal(unrefs, 1, "unref'd");
      assert.equal(clock.countTimers(), 1);
      await releaseAll(leases);

      await clock.tickAsync(10_000); // all three idle out (min 0)
      await flush();
      assert.equal(pool.stats().total, 0);
      assert.equal(clock.countTimers(), 0, "stopped once the pool holds nothing");

      const again = await pool.acquire();
      assert.deepEqual(periods, [250, 250], "started again for the next resource");
      assert.equal(unrefs, 2);
      assert.equal(clock.countTimers(), 1);
      await again.release();
    } finally {
      await closeUnderFakeTime(pool, clock);
      globalThis.setInterval = fakeSetInterval as unknown as typeof setInterval;
      clock.uninstall();
    }
  });

  it("Pool.close() clears the interval of a pool keeping min resources warm", async () => {
    await withTimedPool({ min: 2, keepaliveMs: 5_000 }, async ({ pool, clock, factory }) => {
      await pool.ready();
      assert.equal(clock.countTimers(), 1);
      await pool.close();
      assert.equal(clock.countTimers(), 0);
      await clock.tickAsync(60_000);
      assert.equal(factory.validated.length, 0, "no reaper work after close");
      assert.equal(factory.createCalls, 2, "no min upkeep after close");
    });
  });
});

describe("idle timeout", () => {
  it("Pool destroys idle resources above min after idleTimeoutMs and never churns at min", async () => {
    await withTimedPool(
      { min: 3, max: 5, idleTimeoutMs: 10_000, maxLifetimeMs: 0 },
      async ({ pool, clock, events }) => {
        await pool.ready();
        await releaseAll(await leaseMany(pool, 5));
        await clock.tickAsync(9_000);
        assert.equal(destroys(events).length, 0, "not before idleTimeoutMs");
        await clock.tickAsync(1_000);
        assert.deepEqual(destroys(events).map((e) => [e.reason, e.time]), [
          ["idle", 10_000],
          ["idle", 10_000],
        ]);
        assert.equal(pool.stats().idle, 3);
        await clock.tickAsync(10 * 60_000);
        assert.equal(destroys(events).length, 2, "min resources are never idled out");
        assert.equal(pool.stats().idle, 3);
        assert.equal(pool.stats().created, 5, "nor replaced");
      },
    );
  });

  it("Pool destroys every eligible idle resource in the same tick", async () => {
    await withTimedPool(
      { max: 10, idleTimeoutMs: 10_000, maxLifetimeMs: 0 },
      async ({ pool, clock, events }) => {
        await releaseAll(await leaseMany(pool, 10));
        const perTick: number[] = [];
        for (let i = 0; i < 12; i++) {
          const before = destroys(events).length;
          await clock.tickAsync(1_000);
          perTick.push(destroys(events).length - before);
        }
        assert.deepEqual(perTick, [0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0]);
        assert.ok(destroys(events).every((e) => e.reason === "idle"));
        assert.equal(clock.countTimers(), 0);
      },
    );
  });

  it("Pool restarts a resource's idle clock each time it is released", async () => {
    await withTimedPool(
      { idleTimeoutMs: 10_000, maxLifetimeMs: 0 },
      async ({ pool, clock, events }) => {
        for (let i = 0; i < 5; i++) {
          await (await pool.acquire()).release();
          await clock.tickAsync(8_000);
        }
        assert.equal(destroys(events).length, 0, "used every 8 s: never idle 10 s");
        await clock.tickAsync(2_000);
        assert.deepEqual(destroys(events).map((e) => e.reason), ["idle"]);
      },
    );
  });
});

describe("keepalive", () => {
  it("Pool validates idle resources unused for keepaliveMs, a few per tick, never a leased one", async () => {
    await withTimedPool(
      { max: 10, keepaliveMs: 5_000, idleTimeoutMs: 0, maxLifetimeMs: 0 },
      async ({ pool, clock, factory }) => {
        const leases = await leaseMany(pool, 10);
        const held = leases[0];
        const idle = leases.slice(1).map((lease) => lease.value);
        await releaseAll(leases.slice(1));
        const perTick: number[] = [];
        for (let i = 0; i < 30; i++) {
          const before = factory.validated.length;
          await clock.tickAsync(1_000);
          perTick.push(factory.validated.length - before);
        }
        assert.deepEqual(perTick.slice(0, 4), [0, 0, 0, 0], "not before keepaliveMs");
        assert.ok(Math.max(...perTick) <= 4, `at most 4 per tick: ${perTick}`);
        assert.equal(factory.validated.includes(held.value), false, "never the leased one");
        for (const r of idle) {
          const checks = factory.validated.filter((v) => v === r).length;
          // About once per keepaliveMs over 30 s, neither never nor on every tick.
          assert.ok(checks >= 5 && checks <= 6, `resource ${r.id} checked ${checks} times`);
        }
        assert.equal(pool.stats().idle, 9);
        await held.release();
      },
    );
  });

  it("Pool destroys a resource that fails its keepalive check and replaces it up to min", async () => {
    await withTimedPool(
      { min: 3, keepaliveMs: 5_000, maxLifetimeMs: 0 },
      async ({ pool, clock, factory, events }) => {
        await pool.ready();
        const broken = factory.created[1];
        broken.broken = true;
        await clock.tickAsync(5_000);
        await flush();
        assert.deepEqual(destroys(events).map((e) => e.reason), ["invalid"]);
        assert.equal(eventsOf(events, "validate-fail").length, 1);
        assert.deepEqual(factory.destroyed, [broken]);
        assert.equal(pool.stats().idle, 3, "replaced up to min");
        assert.equal(pool.stats().created, 4);
        assert.equal(pool.stats().validationFailures, 1);
      },
    );
  });

  it("Pool keepalive checks do not postpone the idle timeout", async () => {
    await withTimedPool(
      { keepaliveMs: 5_000, idleTimeoutMs: 20_000, maxLifetimeMs: 0, max: 3 },
      async ({ pool, clock, factory, events }) => {
        await releaseAll(await leaseMany(pool, 3));
        await clock.tickAsync(19_000);
        assert.ok(factory.validated.length >= 9, "checked every 5 s meanwhile");
        assert.equal(destroys(events).length, 0);
        await clock.tickAsync(1_000);
        assert.deepEqual(destroys(events).map((e) => e.reason), ["idle", "idle", "idle"]);
      },
    );
  });
});

describe("min upkeep", () => {
  it("Pool keeps min resources warm from the start and after a destroy", async () => {
    await withTimedPool({ min: 3 }, async ({ pool, factory }) => {
      await flush();
      assert.equal(pool.stats().idle, 3, "created in the background, without an acquire");
      assert.equal(factory.createCalls, 3);
      const lease = await pool.acquire();
      assert.equal(factory.createCalls, 3, "a lease alone does not call for more");
      await lease.destroy();
      await flush();
      assert.equal(pool.stats().idle, 3);
      assert.equal(factory.createCalls, 4);
    });
  });

  it("Pool backs off between failing creates for min, then recovers", async () => {
    const factory = new FakeFactory();
    factory.createPlan = ["ok", ...new Array<"fail">(60).fill("fail")];
    const rounds: number[] = [];
    const create = factory.create.bind(factory);
    factory.create = (signal) => {
      if (rounds.at(-1) !== Date.now()) rounds.push(Date.now());
      return create(signal);
    };
    await withTimedPool({ min: 3, createConcurrency: 3 }, async ({ pool, clock, events }) => {
      await flush();
      assert.equal(factory.createCalls, 3, "one create per missing resource");
      await clock.tickAsync(20);
      assert.equal(factory.createCalls, 3, "no retry before the first backoff");

      // The reaper runs meanwhile (one resource exists); it must not bypass the backoff.
      await clock.tickAsync(10_000);
      assert.ok(factory.createCalls <= 3 + 20, `${factory.createCalls} creates in 10 s`);
      assert.ok(factory.createCalls >= 3 + 8, "but it keeps trying");
      const gaps = rounds.slice(1).map((t, i) => t - rounds[i]);
      assert.ok(gaps.every((gap) => gap >= 25), `gaps ${gaps}`);
      assert.ok(gaps.at(-1)! >= 2_500, `backs off up to seconds: ${gaps}`);
      assert.equal(eventsOf(events, "create-error").length, factory.createCalls - 1);

      factory.createPlan = []; // the database is back
      await clock.tickAsync(5_000);
      await flush();
      assert.equal(pool.stats().idle, 3);
    }, factory);
  });
});

/** The test's own acquiring function: a leak event's stack must name it. */
async function acquireForLeakTest(pool: Pool<FakeResource>): Promise<Lease<FakeResource>> {
  return await pool.acquire();
}

/**
 * Calls `fn` and counts the stack traces formatted while it runs (synchronously), through
 * `Error.prepareStackTrace`, which V8 and JavaScriptCore both call when a stack is first read.
 */
/** Runs `fn` and counts the Errors constructed meanwhile (a leak origin is one). */
function countStacksDuring<R>(fn: () => R): [R, number] {
  const Original = globalThis.Error;
  let count = 0;
  globalThis.Error = new Proxy(Original, {
    construct(target, args, newTarget) {
      count++;
      return Reflect.construct(target, args, newTarget);
    },
  });
  try {
    return [fn(), count];
  } finally {
    globalThis.Error = Original;
  }
}

describe("leak detection", () => {
  it("Pool emits one leak event with the acquirer's stack, and unleaked on release", async () => {
    const clock = fakeTime();
    const pool = new Pool(new FakeFactory(), { leakDetectionMs: 5_000 });
    const seen: PoolEvent[] = [];
    const reading = (async () => {
      for await (const event of pool.events()) seen.push(event);
    })();
    try {
      const lease = await acquireForLeakTest(pool); // created for this acquire
      await clock.tickAsync(4_000);
      assert.equal(eventsOf(seen, "leak").length, 0, "not before leakDetectionMs");
      await clock.tickAsync(1_000);
      const [leak] = eventsOf(seen, "leak");
      assert.ok(leak, "a leak event at leakDetectionMs");
      assert.equal(leak.id, lease.info.id);
      assert.equal(leak.heldMs, 5_000);
      assert.match(leak.stack, /acquireForLeakTest/);

      await clock.tickAsync(20_000);
      assert.equal(eventsOf(seen, "leak").length, 1, "once per lease, not every tick");
      // Nothing is taken from the user.
      assert.equal(lease.released, false);
      assert.equal(lease.value.destroyed, false);
      assert.equal(pool.stats().active, 1);

      await lease.release();
      await flush();
      assert.deepEqual(
        eventsOf(seen, "unleaked").map((e) => [e.id, e.heldMs]),
        [[lease.info.id, 25_000]],
      );
      assert.equal(destroys(seen).length, 0);

      // The next lease (from idle this time) is watched afresh.
      const again = await acquireForLeakTest(pool);
      await clock.tickAsync(5_000);
      await flush();
      const leaks = eventsOf(seen, "leak");
      assert.equal(leaks.length, 2);
      assert.match(leaks[1].stack, /acquireForLeakTest/);
      await again.release();
    } finally {
      await closeUnderFakeTime(pool, clock);
      await reading;
      clock.uninstall();
    }
  });

  it("Pool captures no stack and emits no leak event when leak detection is off", async () => {
    // The probe counts `new Error()` by swapping the global; Bun resolves `Error` once per
    // module, so there only the events are checked (the probe's own control says which).
    const probeSees = countStacksDuring(makeError)[1] === 1;
    for (const leakDetectionMs of [0, 1_000]) {
      await withTimedPool({ leakDetectionMs }, async ({ pool, clock, events }) => {
        await (await pool.acquire()).release(); // one idle resource: the next acquire is sync
        const [pending, stacks] = countStacksDuring(() => pool.acquire());
        const lease = await pending;
        await clock.tickAsync(60_000);
        const leaks = eventsOf(events, "leak").length;
        if (leakDetectionMs === 0) {
          if (probeSees) assert.equal(stacks, 0, "no stack captured");
          assert.equal(leaks, 0);
        } else {
          // The control: the probe does see the capture when detection is on.
          if (probeSees) assert.equal(stacks, 1, "one stack captured");
          assert.equal(leaks, 1);
        }
        await lease.release();
      });
    }
  });
});

describe("clock jumps", () => {
  // @sinonjs/fake-timers' `clock.jump(ms)` moves every timer that falls due during the leap to
  // its end, then advances: performance.now() and Date.now() both leap by `ms` and the reaper's
  // interval fires once, with a huge delta. That is what a frozen serverless instance or a
  // paused VM sees when it resumes. (A laptop's suspend may not advance the monotonic clock
  // at all; then there is no leap to absorb.) `clock.setSystemTime()` moves Date.now() only;
  // performance.now() keeps its course, as when NTP or a user sets the wall clock.
  const LEAP_MS = 3 * 3_600_000;

  it("Pool absorbs a leap forward: nothing is evicted at once and aging resumes after it", async () => {
    // Defaults: idle timeout 10 min, lifetime 30 min: a leap of 3 h taken at face value would
    // retire everything at once.
    await withTimedPool({ max: 5 }, async ({ pool, clock, events }) => {
      const leases = await leaseMany(pool, 5);
      const held = leases[0];
      await releaseAll(leases.slice(1));
      await clock.tickAsync(1_000);
      clock.jump(LEAP_MS);
      await flush();
      assert.equal(destroys(events).length, 0, "nothing evicted by the leap");
      await clock.tickAsync(1_000);
      assert.equal(destroys(events).length, 0);
      assert.equal(pool.stats().total, 5);

      await held.release();
      const [release] = eventsOf(events, "release").slice(-1);
      assert.ok(release.heldMs >= 0 && release.heldMs < 60_000, `heldMs ${release.heldMs}`);

      // Aging goes on in the pool's time: idle out after 10 minutes more.
      await clock.tickAsync(10 * 60_000);
      assert.deepEqual(destroys(events).map((e) => e.reason), new Array(5).fill("idle"));
      assertNoNegativeDurations(events);
    });
  });

  it("Pool absorbs a leap for an acquire that runs before the reaper's next tick", async () => {
    // After a resume, I/O (a request) may run before the timers phase: an acquire then sees
    // the leap before the reaper does. It must not retire every idle resource, and the reaper
    // absorbing the leap afterwards must not make the pool's clock run backwards.
    await withTimedPool({ max: 3 }, async ({ pool, clock, events }) => {
      let woke: Promise<Lease<FakeResource>> | undefined;
      // Created before the reaper's interval, so it fires first at the end of the jump.
      setTimeout(() => (woke = pool.acquire()), 10_000);
      await releaseAll(await leaseMany(pool, 3));
      clock.jump(LEAP_MS);
      assert.ok(woke, "the request ran");
      const lease = await woke;
      await flush();
      assert.equal(destroys(events).length, 0, "nothing evicted by the leap");
      assert.equal(pool.stats().created, 3);
      await clock.tickAsync(2_000);
      await lease.release();
      const [release] = eventsOf(events, "release").slice(-1);
      assert.ok(release.heldMs >= 2_000 && release.heldMs < 60_000, `heldMs ${release.heldMs}`);
      assertNoNegativeDurations(events);
    });
  });

  it("Pool validates every idle resource before its next use after a leap", async () => {
    // The leap is not counted as age, but connections idle through a frozen instance may have
    // died unseen: each is checked before reuse, even within validateBypassMs.
    await withTimedPool({ max: 3, validateBypassMs: 60_000 }, async ({ pool, clock, factory }) => {
      await releaseAll(await leaseMany(pool, 3));
      const before = factory.validated.length;
      await releaseAll(await leaseMany(pool, 3));
      assert.equal(factory.validated.length, before, "within the bypass window: no validation");
      clock.jump(LEAP_MS);
      await flush();
      factory.created[0].broken = true; // died during the freeze
      const leases = await leaseMany(pool, 3);
      assert.equal(factory.validated.length, before + 3, "all 3 checked; the dead one replaced");
      assert.equal(pool.stats().validationFailures, 1);
      assert.ok(leases.every((l) => !l.value.broken), "no dead resource handed out");
      assert.equal(factory.created.length, 4);
      await releaseAll(leases);
    });
  });

  it("Pool ages resources on the monotonic clock when the wall clock is set back", async () => {
    await withTimedPool(
      { max: 4, idleTimeoutMs: 10_000, maxLifetimeMs: 60_000, lifetimeJitter: 0 },
      async ({ pool, clock, events }) => {
        const leases = await leaseMany(pool, 4);
        const held = leases[0];
        await releaseAll(leases.slice(1));
        clock.setSystemTime(Date.now() - LEAP_MS);
        await clock.tickAsync(9_000);
        assert.equal(destroys(events).length, 0);
        await clock.tickAsync(1_000);
        assert.deepEqual(destroys(events).map((e) => e.reason), ["idle", "idle", "idle"]);

        await clock.tickAsync(50_000); // 60 s after creation, by the monotonic clock
        const heldId = held.info.id;
        await held.release();
        const [release] = eventsOf(events, "release").slice(-1);
        assert.equal(release.heldMs, 60_000);
        assert.deepEqual(destroys(events).slice(-1).map((e) => [e.id, e.reason]), [[
          heldId,
          "lifetime",
        ]]);
        assertNoNegativeDurations(events);
      },
    );
  });

  it("Pool evicts nothing when the wall clock is set forward", async () => {
    await withTimedPool(
      { max: 3, idleTimeoutMs: 10_000, maxLifetimeMs: 60_000 },
      async ({ pool, clock, events }) => {
        await releaseAll(await leaseMany(pool, 3));
        clock.setSystemTime(Date.now() + LEAP_MS);
        await clock.tickAsync(1_000);
        assert.equal(destroys(events).length, 0);
        await clock.tickAsync(9_000);
        assert.deepEqual(destroys(events).map((e) => e.reason), ["idle", "idle", "idle"]);
        assertNoNegativeDurations(events);
      },
    );
  });
});

describe("process exit", () => {
  const runtimes: Runtime[] = ["deno", "bun", "node"];
  const EXIT_WITHIN_MS = 15_000;

  for (const runtime of runtimes) {
    it(`an idle pool with its reaper running keepalive checks lets ${runtime} exit`, {
      timeout: 30_000,
    }, async () => {
      const run = await runScript(
        runtime,
        new URL("./fixtures/reaper_idle_exit.ts", import.meta.url),
        EXIT_WITHIN_MS,
      );
      assert.equal(run.timedOut, false, `still running after ${EXIT_WITHIN_MS} ms:\n${run.stderr}`);
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
      assert.ok(report.validations > 0, `the reaper ran: ${run.stdout}`);
      assert.equal(report.idle, 2);
    });

    it(`a pool backing off from failing creates for min lets ${runtime} exit`, {
      timeout: 30_000,
    }, async () => {
      const run = await runScript(
        runtime,
        new URL("./fixtures/reaper_backoff_exit.ts", import.meta.url),
        EXIT_WITHIN_MS,
      );
      assert.equal(run.timedOut, false, `still running after ${EXIT_WITHIN_MS} ms:\n${run.stderr}`);
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
      assert.ok(report.attempts > 2, `it kept retrying: ${run.stdout}`);
    });
  }
});
