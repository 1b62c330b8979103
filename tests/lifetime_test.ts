/**
 * How resources retire: maximum lifetime with jitter, maximum uses, `evict()`, and the checks
 * on the options that drive aging. Time is fake throughout; the reaper runs when the test
 * ticks the clock.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Factory, Pool, type PoolOptions, type ResourceInfo } from "../mod.ts";
import {
  closeUnderFakeTime,
  destroys,
  FakeFactory,
  type FakeResource,
  fakeTime,
  flush,
  isPending,
  leaseMany,
  releaseAll,
  seededRandom,
  withTimedPool,
} from "./_helpers.ts";

/** Runs `fn` with `Math.random` replaced by `random`; restores it after. */
async function withRandom(random: () => number, fn: () => Promise<void>): Promise<void> {
  const original = Math.random;
  Math.random = random;
  try {
    await fn();
  } finally {
    Math.random = original;
  }
}

/** The public facts of a resource record, copied (the record itself carries more). */
function facts(info: ResourceInfo): ResourceInfo {
  return { id: info.id, createdAt: info.createdAt, lastUsedAt: info.lastUsedAt, uses: info.uses };
}

describe("maxLifetimeMs", () => {
  it("Pool spreads the expiry of resources created together over many ticks, all within the lifetime", async () => {
    await withRandom(seededRandom(20240611), () =>
      withTimedPool(
        { max: 100, maxLifetimeMs: 100_000, lifetimeJitter: 0.25, reapIntervalMs: 1_000 },
        async ({ pool, clock, events }) => {
          await releaseAll(await leaseMany(pool, 100));
          const perTick: number[] = [];
          for (let t = 1_000; t <= 100_000; t += 1_000) {
            const before = destroys(events).length;
            await clock.tickAsync(1_000);
            perTick.push(destroys(events).length - before);
          }
          // Jitter 0.25 shortens each lifetime by at most 25 %: nothing goes before 75 s.
          assert.deepEqual(perTick.slice(0, 75), new Array(75).fill(0), "none before 75 s");
          const busiest = Math.max(...perTick);
          assert.ok(busiest <= 20, `at most 20 % in one tick, saw ${busiest} (${perTick})`);
          const ticksUsed = perTick.filter((n) => n > 0).length;
          assert.ok(ticksUsed >= 10, `spread over ≥ 10 ticks, saw ${ticksUsed}`);
          // …and all are gone by the lifetime itself.
          assert.equal(pool.stats().total, 0);
          assert.equal(destroys(events).length, 100);
          assert.ok(destroys(events).every((e) => e.reason === "lifetime"));
        },
      ));
  });

  it("Pool shortens each lifetime by a random 0–2.5 % by default", async () => {
    // Math.random() per resource, in creation order: no shortening, the most, half of it.
    const draws = [0, 0.9999, 0.5];
    await withRandom(
      () => draws.shift() ?? 0,
      () =>
        withTimedPool({ max: 3, maxLifetimeMs: 100_000 }, async ({ pool, clock, events }) => {
          await releaseAll(await leaseMany(pool, 3));
          await clock.tickAsync(100_000);
          const when = new Map(destroys(events).map((e) => [e.id, e.time]));
          // Expiries 100 000, 97 502.5 and 98 750 ms: each is destroyed at the first tick after.
          assert.deepEqual(
            [when.get(1), when.get(2), when.get(3)],
            [100_000, 98_000, 99_000],
          );
          assert.ok(destroys(events).every((e) => e.reason === "lifetime"));
        }),
    );
  });

  it("Pool destroys an idle resource past its lifetime in the next tick, a leased one on release", async () => {
    await withTimedPool(
      { maxLifetimeMs: 10_000, lifetimeJitter: 0 },
      async ({ pool, clock, events, factory }) => {
        const [idle, leased] = await leaseMany(pool, 2);
        const idleId = idle.info.id;
        await idle.release();
        await clock.tickAsync(9_000);
        assert.equal(destroys(events).length, 0, "not before the lifetime");
        await clock.tickAsync(1_000);
        assert.deepEqual(
          destroys(events).map((e) => [e.id, e.reason, e.time]),
          [[idleId, "lifetime", 10_000]],
        );

        // The leased one is never taken from its user, however long past its lifetime.
        await clock.tickAsync(60_000);
        assert.equal(destroys(events).length, 1);
        assert.equal(leased.released, false);
        assert.equal(leased.value.destroyed, false);
        assert.equal(pool.stats().active, 1);

        const value = leased.value;
        await leased.release();
        assert.deepEqual(destroys(events).slice(1).map((e) => [e.id, e.reason]), [[
          leased.info.id,
          "lifetime",
        ]]);
        assert.equal(value.destroyed, true);
        assert.equal(factory.alive, 0);
        assert.equal(pool.stats().total, 0);
      },
    );
  });

  it("Pool replaces resources retired by lifetime up to min", async () => {
    await withTimedPool(
      { min: 2, maxLifetimeMs: 10_000, lifetimeJitter: 0 },
      async ({ pool, clock, events, factory }) => {
        await pool.ready();
        await clock.tickAsync(10_000);
        await flush();
        assert.deepEqual(destroys(events).map((e) => [e.id, e.reason]), [
          [1, "lifetime"],
          [2, "lifetime"],
        ]);
        assert.equal(pool.stats().idle, 2);
        assert.equal(pool.stats().created, 4);
        assert.equal(factory.alive, 2);
        // The replacements live a full lifetime of their own.
        await clock.tickAsync(9_000);
        assert.equal(destroys(events).length, 2);
        await clock.tickAsync(1_000);
        assert.equal(destroys(events).length, 4);
      },
    );
  });

  it("Pool.acquire() never hands out a resource past its lifetime, even between reaper ticks", async () => {
    await withTimedPool(
      {
        maxLifetimeMs: 10_000,
        lifetimeJitter: 0,
        reapIntervalMs: 60_000,
        validateOnAcquire: false,
      },
      async ({ pool, clock, events }) => {
        const first = await pool.acquire();
        const firstId = first.info.id;
        await first.release();
        await clock.tickAsync(15_000); // past the lifetime, before the first reaper tick
        assert.equal(destroys(events).length, 0);
        const second = await pool.acquire();
        assert.notEqual(second.info.id, firstId);
        assert.deepEqual(destroys(events).map((e) => [e.id, e.reason]), [[firstId, "lifetime"]]);
        await second.release();
      },
    );
  });

  for (const off of [0, Infinity]) {
    it(`Pool never retires by lifetime when maxLifetimeMs is ${off}`, async () => {
      await withTimedPool(
        { maxLifetimeMs: off, lifetimeJitter: 0.5, idleTimeoutMs: 0, reapIntervalMs: 60_000 },
        async ({ pool, clock, events }) => {
          await releaseAll(await leaseMany(pool, 3));
          await clock.tickAsync(24 * 3_600_000);
          assert.equal(destroys(events).length, 0);
          assert.equal(pool.stats().idle, 3);
        },
      );
    });
  }
});

describe("maxUses", () => {
  it("Pool destroys a resource on the release that reaches maxUses", async () => {
    await withTimedPool({ max: 1, maxUses: 3 }, async ({ pool, events }) => {
      for (let use = 1; use <= 3; use++) {
        const lease = await pool.acquire();
        assert.equal(lease.info.id, 1);
        assert.equal(lease.info.uses, use);
        assert.equal(destroys(events).length, 0, `still alive during use ${use}`);
        await lease.release();
      }
      assert.deepEqual(destroys(events).map((e) => [e.id, e.reason]), [[1, "max-uses"]]);
      const next = await pool.acquire();
      assert.equal(next.info.id, 2);
      assert.equal(next.info.uses, 1);
      await next.release();
    });
  });

  it("Pool replaces a resource retired by maxUses up to min", async () => {
    await withTimedPool({ min: 1, maxUses: 1 }, async ({ pool, events }) => {
      await pool.ready();
      await (await pool.acquire()).release();
      await flush();
      assert.deepEqual(destroys(events).map((e) => e.reason), ["max-uses"]);
      assert.equal(pool.stats().idle, 1);
      assert.equal(pool.stats().created, 2);
    });
  });
});

describe("Pool.evict()", () => {
  it("Pool.evict() destroys idle matches now, leased matches on release, and returns the count", async () => {
    await withTimedPool({ max: 4 }, async ({ pool, events }) => {
      const leases = await leaseMany(pool, 4);
      assert.deepEqual(leases.map((lease) => lease.info.id), [1, 2, 3, 4]);
      const [one, two] = leases;
      await releaseAll(leases.slice(2)); // 3 and 4 idle; 1 and 2 leased
      const odd = (_value: FakeResource, info: ResourceInfo) => info.id % 2 === 1;

      assert.equal(await pool.evict(odd), 2);
      assert.deepEqual(destroys(events).map((e) => [e.id, e.reason]), [[3, "evicted"]]);
      assert.equal(one.value.destroyed, false, "a leased match stays with its user");
      assert.equal(await pool.evict(odd), 0, "a leased match is not counted twice");

      await one.release();
      await two.release();
      assert.deepEqual(destroys(events).map((e) => [e.id, e.reason]), [
        [3, "evicted"],
        [1, "evicted"],
      ]);
      assert.equal(pool.stats().idle, 2);
    });
  });

  it("Pool.evict() without a predicate evicts every resource and refills to min", async () => {
    await withTimedPool({ min: 2, max: 4 }, async ({ pool, events }) => {
      await pool.ready();
      const leases = await leaseMany(pool, 3);
      await leases[0].release();
      await leases[1].release(); // two idle, one leased
      assert.equal(await pool.evict(), 3);
      await flush();
      assert.equal(destroys(events).length, 2);
      await leases[2].release();
      await flush();
      assert.equal(destroys(events).length, 3);
      assert.ok(destroys(events).every((e) => e.reason === "evicted"));
      const s = pool.stats();
      assert.equal(s.idle, 2, "refilled to min");
      assert.equal(s.created, 5);
    });
  });

  it("Pool.evict() destroys a resource that was being validated once its check ends", async () => {
    const factory = new FakeFactory();
    factory.validatePlan = [{ delayMs: 3_000 }];
    await withTimedPool({ keepaliveMs: 5_000 }, async ({ pool, clock, events }) => {
      await (await pool.acquire()).release();
      await clock.tickAsync(5_000); // the keepalive check starts and takes 3 s
      assert.equal(pool.stats().validating, 1);
      assert.equal(await pool.evict(), 1);
      assert.equal(destroys(events).length, 0);
      await clock.tickAsync(3_000);
      assert.deepEqual(destroys(events).map((e) => [e.id, e.reason]), [[1, "evicted"]]);
      assert.equal(pool.stats().total, 0);
    }, factory);
  });

  it("Pool shows correct createdAt, lastUsedAt and uses to evict() predicates and factory hooks", async () => {
    const seen: { hook: string; info: ResourceInfo }[] = [];
    const record = (hook: string) => (_value: FakeResource, info: ResourceInfo) => {
      seen.push({ hook, info: facts(info) });
    };
    const inner = new FakeFactory();
    const factory: Factory<FakeResource> = {
      create: (signal) => inner.create(signal),
      reset: record("reset"),
      destroy: record("destroy"),
    };
    const clock = fakeTime();
    const pool = new Pool(factory, { min: 2, max: 2 });
    try {
      await clock.tickAsync(1_000);
      await pool.ready(); // both created at 0 ms
      await clock.tickAsync(4_000);
      const a = await pool.acquire(); // at 5 s
      await clock.tickAsync(2_000);
      await a.release(); // reset sees it at 7 s
      await clock.tickAsync(3_000);
      const again = await pool.acquire(); // at 10 s, the same (LIFO) resource
      assert.equal(again.info.id, a.info.id);
      await again.release();

      const infos: ResourceInfo[] = [];
      const count = await pool.evict((_value, info) => {
        infos.push(facts(info));
        return info.uses === 0;
      });
      assert.equal(count, 1);
      const used = a.info.id;
      const unused = used === 1 ? 2 : 1;
      assert.deepEqual(
        infos.sort((x, y) => x.id - y.id),
        [
          { id: 1, createdAt: 0, lastUsedAt: used === 1 ? 10_000 : 0, uses: used === 1 ? 2 : 0 },
          { id: 2, createdAt: 0, lastUsedAt: used === 2 ? 10_000 : 0, uses: used === 2 ? 2 : 0 },
        ],
      );
      assert.deepEqual(seen, [
        { hook: "reset", info: { id: used, createdAt: 0, lastUsedAt: 5_000, uses: 1 } },
        { hook: "reset", info: { id: used, createdAt: 0, lastUsedAt: 10_000, uses: 2 } },
        { hook: "destroy", info: { id: unused, createdAt: 0, lastUsedAt: 0, uses: 0 } },
      ]);
    } finally {
      await closeUnderFakeTime(pool, clock);
      clock.uninstall();
    }
  });
});

describe("aging options", () => {
  const bad: [keyof PoolOptions, unknown][] = [
    ["reapIntervalMs", 0],
    ["reapIntervalMs", 0.5],
    ["reapIntervalMs", -1],
    ["reapIntervalMs", NaN],
    ["reapIntervalMs", Infinity],
    ["maxLifetimeMs", -1],
    ["maxLifetimeMs", NaN],
    ["lifetimeJitter", -0.01],
    ["lifetimeJitter", 1],
    ["lifetimeJitter", 1.5],
    ["lifetimeJitter", NaN],
    ["idleTimeoutMs", -1],
    ["idleTimeoutMs", NaN],
    ["keepaliveMs", -1],
    ["keepaliveMs", NaN],
    ["leakDetectionMs", -1],
    ["leakDetectionMs", NaN],
    ["maxUses", 0],
    ["maxUses", -1],
    ["maxUses", 1.5],
    ["maxUses", NaN],
  ];

  it("new Pool() refuses out-of-range aging options with a RangeError naming the option", () => {
    for (const [key, value] of bad) {
      assert.throws(
        () => new Pool(new FakeFactory(), { [key]: value }),
        (error: unknown) =>
          error instanceof RangeError && new RegExp(`\\b${key}\\b`).test(error.message),
        `${key}: ${value}`,
      );
    }
  });

  it("new Pool() refuses a keepaliveMs not below maxLifetimeMs, naming both", () => {
    const cases: PoolOptions[] = [
      { keepaliveMs: 60_000, maxLifetimeMs: 60_000 },
      { keepaliveMs: 90_000, maxLifetimeMs: 60_000 },
      { keepaliveMs: 1_800_000 }, // the default lifetime
    ];
    for (const options of cases) {
      assert.throws(
        () => new Pool(new FakeFactory(), options),
        (error: unknown) =>
          error instanceof RangeError && /\bkeepaliveMs\b/.test(error.message) &&
          /\bmaxLifetimeMs\b/.test(error.message),
        JSON.stringify(options),
      );
    }
  });

  it("new Pool() accepts aging options at the edges of their ranges", async () => {
    const good: PoolOptions[] = [
      { reapIntervalMs: 1 },
      { maxLifetimeMs: 0, keepaliveMs: 3_600_000 },
      { maxLifetimeMs: Infinity, keepaliveMs: 3_600_000 },
      { maxLifetimeMs: 60_000, keepaliveMs: 59_999 },
      { lifetimeJitter: 0 },
      { lifetimeJitter: 0.999 },
      { idleTimeoutMs: 0, keepaliveMs: 0, leakDetectionMs: 0 },
      { idleTimeoutMs: Infinity, leakDetectionMs: Infinity, maxUses: Infinity },
      { maxUses: 1 },
    ];
    for (const options of good) {
      const pool = new Pool(new FakeFactory(), options);
      await pool.close();
    }
  });
});

describe("retirement with nobody listening and no hooks (the quiet release path)", () => {
  /** A factory with create and destroy only, and a pool nobody listens to. */
  async function withQuietPool(
    options: PoolOptions,
    fn: (
      pool: Pool<{ id: number }>,
      destroyed: number[],
      clock: ReturnType<typeof fakeTime>,
    ) => Promise<void>,
  ): Promise<void> {
    const clock = fakeTime();
    const destroyed: number[] = [];
    let n = 0;
    const pool = new Pool({
      create: () => ({ id: ++n }),
      destroy: (value: { id: number }) => void destroyed.push(value.id),
    }, options);
    try {
      await fn(pool, destroyed, clock);
    } finally {
      await closeUnderFakeTime(pool, clock);
      clock.uninstall();
    }
  }

  it("Pool returns a plain lease to idle and counts it", async () => {
    await withQuietPool({}, async (pool, destroyed) => {
      const lease = await pool.acquire();
      await lease.release();
      const s = pool.stats();
      assert.deepEqual([s.idle, s.active, s.released, destroyed.length], [1, 0, 1, 0]);
      assert.equal((await pool.acquire()).value.id, 1, "the same resource again");
    });
  });

  it("Pool never lends an idle resource past its lifetime, however far the coarse clock lags", async () => {
    // No reaper tick for a minute: only the acquire itself can notice the lifetime is over.
    await withQuietPool(
      { maxLifetimeMs: 1_000, lifetimeJitter: 0, reapIntervalMs: 60_000 },
      async (pool, destroyed, clock) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(999);
        const young = await pool.acquire();
        assert.equal(young.value.id, 1, "1 ms short of its lifetime: still lent");
        await young.release();
        await clock.tickAsync(1);
        const lease = await pool.acquire();
        assert.equal(lease.value.id, 2, "a new resource: the first one reached its lifetime");
        assert.deepEqual(destroyed, [1]);
        await lease.release();
      },
    );
  });

  for (const idleOrder of ["lifo", "fifo"] as const) {
    it(`Pool lends idle resources in ${idleOrder} order`, async () => {
      await withQuietPool({ idleOrder }, async (pool) => {
        const [a, b] = [await pool.acquire(), await pool.acquire()];
        await a.release();
        await b.release();
        const next = await pool.acquire();
        assert.equal(next.value.id, idleOrder === "lifo" ? 2 : 1);
        await next.release();
      });
    });
  }

  it("Pool checks options, closing and the signal before lending an idle resource", async () => {
    await withQuietPool({}, async (pool) => {
      await (await pool.acquire()).release();
      const reason = new Error("gone");
      await assert.rejects(
        pool.acquire({ signal: AbortSignal.abort(reason) }),
        (e) => e === reason,
      );
      await assert.rejects(pool.acquire({ timeoutMs: -1 }), RangeError);
      // @ts-expect-error: a wrong shape on purpose
      await assert.rejects(pool.acquire({ signal: "nope" }), TypeError);
      const lease = await pool.acquire({ signal: new AbortController().signal, timeoutMs: 5 });
      assert.equal(lease.value.id, 1, "the idle one, at once");
      const s = pool.stats();
      assert.deepEqual([s.aborted, s.idle, s.active, s.hitRate], [1, 0, 1, 0.5]);
      await lease.release();
      const closing = pool.close();
      await assert.rejects(pool.acquire(), { name: "PoolClosedError" });
      await closing;
    });
  });

  it("Pool refuses an acquire made while close() runs, with a resource still idle", async () => {
    // close() aborts creates in flight before it destroys idle resources, and abort listeners
    // run at once: one that acquires sees a closed pool with a resource still in idle.
    const clock = fakeTime();
    let n = 0;
    let inner: Promise<unknown> | undefined;
    const pool: Pool<{ id: number }> = new Pool({
      create: (signal: AbortSignal) => {
        if (++n === 1) return { id: 1 };
        return new Promise<{ id: number }>((_, reject) => {
          signal.addEventListener("abort", () => {
            inner = pool.acquire();
            reject(signal.reason);
          });
        });
      },
    }, { min: 2, max: 2 });
    try {
      await clock.tickAsync(1);
      assert.deepEqual([pool.stats().idle, pool.stats().creating], [1, 1]);
      const closing = pool.close();
      assert.ok(inner, "the abort listener ran inside close()");
      await assert.rejects(inner, { name: "PoolClosedError" });
      await closing;
    } finally {
      await closeUnderFakeTime(pool, clock);
      clock.uninstall();
    }
  });

  it("Pool counts a lend from idle as a hit and a wait of 0 ms", async () => {
    const clock = fakeTime();
    let n = 0;
    const pool = new Pool({
      create: () =>
        new Promise<{ id: number }>((resolve) => setTimeout(() => resolve({ id: ++n }), 10)),
    });
    try {
      const first = pool.acquire();
      await clock.tickAsync(10);
      await (await first).release(); // waited 10 ms for its create
      await (await pool.acquire()).release(); // from idle: 0 ms
      const s = pool.stats();
      assert.deepEqual([s.acquired, s.hitRate, s.created], [2, 0.5, 1]);
      assert.equal(s.waitMs.avg, 5, "10 ms and 0 ms");
    } finally {
      await closeUnderFakeTime(pool, clock);
      clock.uninstall();
    }
  });

  it("Pool destroys a resource on the release that reaches maxUses", async () => {
    await withQuietPool({ maxUses: 2 }, async (pool, destroyed) => {
      await (await pool.acquire()).release();
      assert.deepEqual(destroyed, []);
      await (await pool.acquire()).release();
      assert.deepEqual(destroyed, [1]);
      assert.equal(pool.stats().idle, 0);
      assert.equal((await pool.acquire()).value.id, 2);
    });
  });

  it("Pool destroys an evicted leased resource on release", async () => {
    await withQuietPool({}, async (pool, destroyed) => {
      const lease = await pool.acquire();
      assert.equal(await pool.evict(), 1);
      await lease.release();
      assert.deepEqual(destroyed, [1]);
      assert.equal(pool.stats().idle, 0);
    });
  });

  it("Pool destroys a resource past its lifetime on release, to the millisecond", async () => {
    await withQuietPool(
      { maxLifetimeMs: 1_000, lifetimeJitter: 0 },
      async (pool, destroyed, clock) => {
        const lease = await pool.acquire();
        await clock.tickAsync(999);
        const second = await pool.acquire(); // a new one: the first is leased
        await second.release();
        await clock.tickAsync(1);
        await lease.release();
        assert.deepEqual(destroyed, [1], "released at 1 000 ms: retired");
        assert.equal(pool.stats().idle, 1, "the younger one stays");
      },
    );
  });

  it("Pool hands a released resource to the first waiter, and a retiring one to nobody", async () => {
    await withQuietPool({ max: 1, maxUses: 2 }, async (pool, destroyed) => {
      const lease = await pool.acquire();
      const first = pool.acquire();
      const second = pool.acquire();
      await lease.release();
      const served = await first;
      assert.equal(served.value.id, 1, "handed straight to the first waiter");
      assert.equal(await isPending(second), true);
      await served.release(); // its second use: retired, so the waiter gets a new one
      assert.deepEqual(destroyed, [1]);
      const next = await second;
      assert.equal(next.value.id, 2);
      await next.release();
    });
  });

  it("Pool serves a long queue of plain waiters in order, each lease once, retiring at maxUses", async () => {
    // 40 waiters on max 2 with no deadline and no signal: past the first 16, most waits are
    // untimed, and those waiters take the shortest hand-off there is.
    const maxUses = 7;
    await withQuietPool(
      { max: 2, acquireTimeoutMs: Infinity, maxUses },
      async (pool, destroyed) => {
        const first = [await pool.acquire(), await pool.acquire()];
        const served: number[] = [];
        const uses = new Map<number, number>();
        const queued = Array.from({ length: 40 }, (_, i) =>
          pool.acquire().then(async (lease) => {
            served.push(i);
            const id = lease.value.id;
            uses.set(id, (uses.get(id) ?? 0) + 1);
            assert.equal(pool.stats().active <= 2, true);
            await lease.release();
            assert.equal(lease.released, true);
          }));
        assert.equal(pool.stats().waiting, 40);
        for (const lease of first) await lease.release();
        await Promise.all(queued);
        assert.deepEqual(served, Array.from({ length: 40 }, (_, i) => i), "strictly FIFO");
        const s = pool.stats();
        assert.deepEqual(
          [s.waiting, s.active, s.acquired, s.released, s.waitMs.max >= 0],
          [0, 0, 42, 42, true],
        );
        for (const [id, n] of uses) {
          assert.equal(n <= maxUses, true, `resource ${id} used ${n} times by waiters`);
        }
        // 42 uses at 7 each: six resources, each destroyed on its seventh release.
        assert.equal(s.created, 6);
        assert.deepEqual(destroyed.sort((a, b) => a - b), [1, 2, 3, 4, 5, 6]);
        assert.equal(s.created - s.destroyed, s.idle + s.active);
      },
    );
  });

  it("Pool destroys a lease released while the pool closes", async () => {
    await withQuietPool({}, async (pool, destroyed) => {
      const lease = await pool.acquire();
      const closing = pool.close();
      await lease.release();
      await closing;
      assert.deepEqual(destroyed, [1]);
    });
  });
});
