import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type AcquireOptions,
  AcquireTimeoutError,
  type Lease,
  Pool,
  PoolClosedError,
  PoolError,
  PoolExhaustedError,
} from "../mod.ts";
import {
  assertInvariant,
  assertPending,
  closeUnderFakeTime,
  countingSignal,
  FakeFactory,
  type FakeResource,
  flush,
  isPending,
  rejection,
  seededRandom,
  withClockPool,
  withFakeTime,
  withPool,
} from "./_helpers.ts";

/** Asserts that `promise` has settled already and returns it: a failure, not a hang, when not. */
async function settled<T>(promise: Promise<T>, what: string): Promise<T> {
  assert.equal(await isPending(promise), false, `expected settled: ${what}`);
  return promise;
}

/** Makes `factory.create` ignore its signal and resolve after `delaysMs[i]` for the i-th call. */
function ignoringSignal(factory: FakeFactory, delaysMs: number[]): void {
  let next = 1_000;
  factory.create = (signal: AbortSignal) => {
    factory.createCalls++;
    factory.createSignals.push(signal);
    const delayMs = delaysMs.shift() ?? 0;
    const r: FakeResource = { id: next++, destroyed: false, broken: false, dirty: false };
    return new Promise((resolve) => {
      setTimeout(() => {
        factory.created.push(r);
        resolve(r);
      }, delayMs);
    });
  };
}

describe("Pool: max", () => {
  for (const seed of [1, 2, 3]) {
    it(`Pool never has more than max resources, counting creations in flight, under 200 concurrent acquires (seed ${seed})`, async () => {
      await withFakeTime(async (clock) => {
        const random = seededRandom(seed);
        const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
        const factory = new FakeFactory();
        for (let i = 0; i < 80; i++) {
          const r = random();
          factory.createPlan.push(
            r < 0.1 ? "fail" : r < 0.2 ? { failAfterMs: int(1, 20) } : { delayMs: int(1, 40) },
          );
        }
        for (let i = 0; i < 400; i++) {
          factory.validatePlan.push(random() < 0.3 ? { delayMs: int(1, 10) } : "ok");
        }
        // Count creates from the factory's side too: in flight there, not yet returned.
        let inFactory = 0;
        const create = factory.create.bind(factory);
        factory.create = async (signal) => {
          inFactory++;
          try {
            return await create(signal);
          } finally {
            inFactory--;
          }
        };
        const max = 5;
        const pool = new Pool(factory, { max, validateBypassMs: 5 });
        let served = 0;
        let rejected = 0;
        let done = 0;
        try {
          for (let i = 0; i < 200; i++) {
            const kind = random();
            const options: AcquireOptions = { timeoutMs: Infinity };
            if (kind < 0.1) {
              const controller = new AbortController();
              options.signal = controller.signal;
              setTimeout(() => controller.abort(new Error("gave up")), int(0, 300));
            } else if (kind < 0.2) {
              options.timeoutMs = int(20, 400);
            }
            const holdMs = int(0, 20);
            const destroy = random() < 0.15;
            const broken = random() < 0.1;
            pool.acquire(options).then((lease) => {
              served++;
              setTimeout(() => {
                if (broken) lease.value.broken = true;
                void (destroy ? lease.destroy() : lease.release()).then(() => done++);
              }, holdMs);
            }, (error) => {
              assert.ok(
                error instanceof AcquireTimeoutError || (error as Error).message === "gave up",
                String(error),
              );
              rejected++;
              done++;
            });
          }
          for (let step = 0; done < 200; step++) {
            assert.ok(step < 100_000, "every acquire settles");
            await clock.tickAsync(1);
            const s = pool.stats();
            assertInvariant(s);
            assert.ok(factory.alive + inFactory <= max, `${factory.alive} + ${inFactory} exist`);
            assert.ok(s.waiting <= 200);
          }
          const s = pool.stats();
          assert.equal(served + rejected, 200);
          assert.equal(s.acquired, served);
          assert.equal(s.released, served);
          assert.equal(s.timedOut + s.aborted, rejected);
          assert.deepEqual([s.waiting, s.active], [0, 0]);
          assert.ok(served > 150, `most acquires are served (${served})`);
        } finally {
          await closeUnderFakeTime(pool, clock);
        }
        assert.equal(factory.alive, 0, "every resource destroyed");
        assertInvariant(pool.stats());
      });
    });
  }

  it("Pool creates one resource per concurrent acquire, up to max", async () => {
    await withPool({ max: 3 }, async (pool, factory) => {
      const acquires = Array.from({ length: 5 }, () => pool.acquire({ timeoutMs: Infinity }));
      await flush();
      assert.equal(factory.createCalls, 3);
      assert.equal(pool.stats().waiting, 2);
      const first = await Promise.all(acquires.slice(0, 3).map((p) => settled(p, "created")));
      assertInvariant(pool.stats());
      for (const lease of first) await lease.release();
      const rest = await Promise.all(acquires.slice(3).map((p) => settled(p, "handed off")));
      assert.equal(factory.createCalls, 3);
      for (const lease of rest) await lease.release();
    });
  });
});

describe("Pool: FIFO hand-off", () => {
  it("Pool serves waiters strictly first come first served", async () => {
    await withPool({ max: 1 }, async (pool, factory) => {
      const first = await pool.acquire();
      const order: number[] = [];
      const waiters = [0, 1, 2, 3, 4].map((i) =>
        pool.acquire({ timeoutMs: Infinity }).then((lease) => {
          order.push(i);
          return lease;
        })
      );
      let lease = first;
      for (let i = 0; i < 5; i++) {
        await flush();
        assert.deepEqual(order, [...Array(i).keys()]);
        await lease.release();
        lease = await settled(waiters[i], `waiter ${i}, served by the release`);
        assert.deepEqual(order, [...Array(i + 1).keys()]);
      }
      await lease.release();
      assert.equal(factory.createCalls, 1);
    });
  });

  it("Pool.release() hands the resource straight to the first waiter: same id, no create, never idle", async () => {
    await withPool({ max: 1 }, async (pool, factory) => {
      const held = await pool.acquire();
      const idBefore = held.info.id;
      const waiting = pool.acquire({ timeoutMs: Infinity });
      await assertPending(waiting);
      await held.release();
      const lease = await settled(waiting, "served");
      assert.equal(lease.info.id, idBefore);
      assert.equal(lease.value, factory.created[0]);
      assert.equal(factory.createCalls, 1);
      const s = pool.stats();
      assert.deepEqual([s.idle, s.active, s.waiting, s.acquired, s.released], [0, 1, 0, 2, 1]);
      await lease.release();
    });
  });

  it("Pool.acquire() arriving while a released resource is being reset queues behind the waiter", async () => {
    await withPool({ max: 1 }, async (pool) => {
      const held = await pool.acquire();
      const order: string[] = [];
      const first = pool.acquire({ timeoutMs: Infinity }).then((l) => (order.push("first"), l));
      await flush();
      const releasing = held.release(); // reset() runs before the hand-off
      const second = pool.acquire({ timeoutMs: Infinity }).then((l) => (order.push("second"), l));
      await releasing;
      const lease = await settled(first, "the first waiter");
      await flush();
      assert.deepEqual(order, ["first"]);
      await lease.release();
      await (await settled(second, "the second waiter")).release();
      assert.deepEqual(order, ["first", "second"]);
    });
  });

  it("Pool.acquire() starts no timer unless it waits with a deadline", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool) => {
        await (await pool.acquire()).release();
        const base = clock.countTimers(); // the pool's own housekeeping, if any
        const fromIdle = await pool.acquire(); // the default deadline is 30 s, but no wait
        assert.equal(clock.countTimers(), base, "acquire from idle");
        const forever = pool.acquire({ timeoutMs: Infinity });
        await flush();
        assert.equal(clock.countTimers(), base, "wait without a deadline");
        const deadlines = [
          pool.acquire({ timeoutMs: 1_000 }),
          pool.acquire({ timeoutMs: 2_000 }),
          pool.acquire(), // the pool's acquireTimeoutMs
        ];
        await flush();
        assert.equal(clock.countTimers(), base + 3, "one per deadline waiter");
        await fromIdle.release(); // → forever
        await (await forever).release(); // → deadlines[0], whose timer goes
        const served = await deadlines[0];
        assert.equal(clock.countTimers(), base + 2);
        await served.release();
        await (await deadlines[1]).release();
        await (await deadlines[2]).release();
        assert.equal(clock.countTimers(), base);
      });
    });
  });
});

describe("Pool: demand-driven creation", () => {
  it("Pool starts no more creates than there are waiters to serve", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = Array.from({ length: 10 }, () => ({ delayMs: 100 }));
      await withClockPool(clock, { max: 10, createConcurrency: Infinity }, async (pool) => {
        const acquires = [pool.acquire(), pool.acquire(), pool.acquire()];
        await flush();
        assert.equal(factory.createCalls, 3);
        assert.equal(pool.stats().creating, 3);
        await clock.tickAsync(100);
        const leases = await Promise.all(acquires);
        for (const lease of leases) await lease.release();
        const again = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
        assert.equal(factory.createCalls, 3, "served from idle");
        for (const lease of again) await lease.release();
        await clock.tickAsync(10_000);
        assert.equal(factory.createCalls, 3, "nothing created without demand (min 0)");
      }, factory);
    });
  });

  it("Pool runs at most createConcurrency creates at once (1 by default)", async () => {
    for (
      const [createConcurrency, steps] of [[undefined, [1, 2, 3]], [2, [2, 4, 5]], [3, [
        3,
        6,
        7,
      ]]] as const
    ) {
      await withFakeTime(async (clock) => {
        const factory = new FakeFactory();
        factory.createPlan = Array.from({ length: 10 }, () => ({ delayMs: 100 }));
        const options = createConcurrency === undefined ? {} : { createConcurrency };
        await withClockPool(clock, { max: 10, ...options }, async (pool) => {
          const acquires = Array.from(
            { length: steps[steps.length - 1] },
            () => pool.acquire({ timeoutMs: Infinity }),
          );
          const calls: number[] = [];
          for (const _ of steps) {
            await flush();
            calls.push(factory.createCalls);
            assert.ok(pool.stats().creating <= (createConcurrency ?? 1));
            await clock.tickAsync(100);
          }
          assert.deepEqual(calls.slice(0, steps.length), [...steps]);
          const leases = await Promise.all(acquires.map((p) => settled(p, "served")));
          for (const lease of leases) await lease.release();
        }, factory);
      });
    }
  });

  it("Pool gives a waiter the resource that frees first: a release beats a slow create, which goes idle", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 2 }, async (pool, factory) => {
        const held = await pool.acquire();
        factory.createPlan.push({ delayMs: 100 });
        const waiting = pool.acquire({ timeoutMs: Infinity });
        await flush();
        assert.equal(factory.createCalls, 2, "a create started for the waiter");
        await clock.tickAsync(10);
        await held.release();
        assert.equal(await isPending(waiting), false, "served by the release at 10 ms");
        const lease = await waiting;
        assert.equal(lease.info.id, held.info.id);
        await clock.tickAsync(90);
        const s = pool.stats();
        assert.deepEqual([s.created, s.idle, s.active, s.creating], [2, 1, 1, 0]);
        assertInvariant(s);
        await lease.release();
      });
    });
  });

  it("Pool gives the first waiter whichever create finishes first", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = [{ delayMs: 100 }, { delayMs: 10 }];
      await withClockPool(clock, { max: 2, createConcurrency: 2 }, async (pool) => {
        const first = pool.acquire();
        const second = pool.acquire();
        await clock.tickAsync(10);
        assert.equal(await isPending(first), false, "the fast create served the first waiter");
        await assertPending(second);
        await clock.tickAsync(90);
        const [a, b] = await Promise.all([first, second]);
        assert.equal(a.value, factory.created[0]); // made by the second create, at 10 ms
        assert.equal(b.value, factory.created[1]);
        await a.release();
        await b.release();
      }, factory);
    });
  });
});

describe("Pool: abort and timeout", () => {
  it("Pool.acquire() waiters on the default timeout share one timer, and each still times out at its own deadline", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1, acquireTimeoutMs: 100 }, async (pool) => {
        const held = await pool.acquire();
        const base = clock.countTimers();
        const first = pool.acquire();
        await clock.tickAsync(30);
        const second = pool.acquire();
        await clock.tickAsync(30);
        const third = pool.acquire();
        const own = rejection(pool.acquire({ timeoutMs: 50 })); // its own length: its own timer
        assert.equal(clock.countTimers(), base + 2, "one shared timer plus the 50 ms one");
        await held.release(); // at 60 ms: the first is served, its deadline (100 ms) stays armed
        const lease = await settled(first, "served");
        const late = rejection(second);
        const last = rejection(third);
        await clock.tickAsync(69); // 129 ms: the second's deadline (130 ms) has not come
        await assertPending(second, "not timed out before its deadline");
        await clock.tickAsync(1);
        const error = await late;
        assert.ok(error instanceof AcquireTimeoutError, String(error));
        assert.match((error as Error).message, /timed out after 100 ms/);
        assert.ok(await own instanceof AcquireTimeoutError, "the 50 ms one timed out at 110 ms");
        await clock.tickAsync(29); // 159 ms
        await assertPending(third, "not timed out before 160 ms");
        await clock.tickAsync(1);
        assert.ok(await last instanceof AcquireTimeoutError);
        assert.equal(clock.countTimers(), base, "no waiter left: no timer left");
        assert.equal(pool.stats().timedOut, 3);
        await lease.release();
      });
    });
  });

  it("Pool.acquire() served waiters on the default timeout leave no timer behind", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1, acquireTimeoutMs: 100 }, async (pool) => {
        let lease = await pool.acquire();
        const base = clock.countTimers();
        const queued = Array.from({ length: 5 }, () => pool.acquire());
        assert.equal(clock.countTimers(), base + 1, "five waiters, one timer");
        for (const next of queued) {
          await clock.tickAsync(10);
          await lease.release();
          lease = await settled(next, "served");
        }
        assert.equal(clock.countTimers(), base, "the queue emptied: the timer is gone");
        await clock.tickAsync(200);
        assert.equal(pool.stats().timedOut, 0);
        await lease.release();
      });
    });
  });

  it("Pool.acquire() rejects with signal.reason when aborted before the call, creating nothing", async () => {
    await withPool({}, async (pool, factory) => {
      const { controller, signal, listeners } = countingSignal();
      const reason = new Error("client went away");
      controller.abort(reason);
      const error = await rejection(pool.acquire({ signal }));
      assert.equal(error, reason);
      assert.equal(factory.createCalls, 0);
      assert.equal(listeners(), 0);
      const s = pool.stats();
      assert.deepEqual([s.aborted, s.waiting, s.acquired], [1, 0, 0]);
    });
  });

  it("Pool.acquire() rejects with the default AbortError or any reason value, even with an idle resource", async () => {
    await withPool({}, async (pool) => {
      await (await pool.acquire()).release();
      const plain = new AbortController();
      plain.abort();
      const error = await rejection(pool.acquire({ signal: plain.signal }));
      assert.equal(error, plain.signal.reason);
      assert.equal((error as Error).name, "AbortError");
      const custom = new AbortController();
      custom.abort("timeout budget spent");
      assert.equal(
        await rejection(pool.acquire({ signal: custom.signal })),
        "timeout budget spent",
      );
      assert.equal(pool.stats().idle, 1, "the idle resource stays idle");
    });
  });

  it("Pool.acquire() rejects with signal.reason when aborted while queued, and the next waiter is served", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool, factory) => {
        const held = await pool.acquire();
        const base = clock.countTimers();
        const { controller, signal, listeners } = countingSignal();
        const aborted = pool.acquire({ signal, timeoutMs: 1_000 });
        const next = pool.acquire({ timeoutMs: Infinity });
        await assertPending(aborted);
        assert.equal(listeners(), 1);
        assert.equal(clock.countTimers(), base + 1);
        const reason = new Error("stop");
        controller.abort(reason);
        assert.equal(await rejection(aborted), reason); // at once: no time passed
        assert.equal(listeners(), 0);
        assert.equal(clock.countTimers(), base, "its deadline timer is gone");
        assert.deepEqual([pool.stats().waiting, pool.stats().aborted], [1, 1]);
        await held.release();
        const lease = await settled(next, "served");
        assert.equal(lease.info.id, held.info.id);
        assert.equal(factory.createCalls, 1);
        await lease.release();
      });
    });
  });

  it("Pool.acquire() rejects with AcquireTimeoutError at its deadline while queued, and the next waiter is served", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const held = await pool.acquire();
        const { signal, listeners } = countingSignal();
        const timing = rejection(pool.acquire({ signal, timeoutMs: 50 }));
        const next = pool.acquire({ timeoutMs: Infinity });
        await clock.tickAsync(49);
        assert.equal(pool.stats().waiting, 2);
        await clock.tickAsync(1);
        assert.ok((await timing) instanceof AcquireTimeoutError);
        assert.equal(listeners(), 0);
        assert.deepEqual([pool.stats().waiting, pool.stats().timedOut], [1, 1]);
        await held.release();
        await (await settled(next, "served")).release();
        assertInvariant(pool.stats());
      });
    });
  });

  it("Pool.acquire() aborted while its create is in flight rejects at once; the late resource goes idle", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan.push({ delayMs: 100 });
      await withClockPool(clock, { max: 2 }, async (pool) => {
        const { controller, signal, listeners } = countingSignal();
        const acquiring = pool.acquire({ signal });
        await flush();
        assert.equal(pool.stats().creating, 1);
        await clock.tickAsync(10);
        controller.abort(new Error("stop"));
        await assert.rejects(acquiring, /stop/);
        assert.equal(listeners(), 0);
        assert.deepEqual([pool.stats().waiting, pool.stats().creating], [0, 1]);
        await clock.tickAsync(90);
        const s = pool.stats();
        assert.deepEqual([s.created, s.idle, s.creating], [1, 1, 0]);
        assertInvariant(s);
        await (await pool.acquire()).release();
        assert.equal(factory.createCalls, 1, "the late resource is reused");
      }, factory);
    });
  });

  it("Pool gives the late resource of an aborted waiter's create to the next waiter", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan.push({ delayMs: 100 });
      await withClockPool(clock, { max: 2 }, async (pool) => {
        const controller = new AbortController();
        const aborted = pool.acquire({ signal: controller.signal });
        await clock.tickAsync(10);
        controller.abort(new Error("stop"));
        await assert.rejects(aborted, /stop/);
        const next = pool.acquire({ timeoutMs: Infinity });
        await flush();
        assert.equal(factory.createCalls, 1, "the create in flight will serve it");
        await clock.tickAsync(90);
        const lease = await settled(next, "served");
        assert.equal(lease.value, factory.created[0]);
        await lease.release();
      }, factory);
    });
  });

  it("Pool.acquire() times out while its create is in flight; the late resource goes idle", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan.push({ delayMs: 100 });
      await withClockPool(clock, { max: 2 }, async (pool) => {
        const acquiring = rejection(pool.acquire({ timeoutMs: 50 }));
        await clock.tickAsync(50);
        const error = await acquiring;
        assert.ok(error instanceof AcquireTimeoutError);
        assert.equal(error.cause, undefined, "no create failed");
        await clock.tickAsync(50);
        const s = pool.stats();
        assert.deepEqual([s.idle, s.timedOut, s.createErrors], [1, 1, 0]);
        assertInvariant(s);
      }, factory);
    });
  });

  it("Pool.acquire() aborted during validation rejects at once; the validated resource goes idle", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(1_000); // past validateBypassMs
        factory.validatePlan.push({ delayMs: 100 });
        const { controller, signal, listeners } = countingSignal();
        const acquiring = pool.acquire({ signal });
        await flush();
        assert.equal(factory.validated.length, 1);
        assert.equal(pool.stats().validating, 1);
        await clock.tickAsync(10);
        controller.abort(new Error("stop"));
        await assert.rejects(acquiring, /stop/);
        assert.equal(listeners(), 0);
        assert.equal(pool.stats().waiting, 0);
        await clock.tickAsync(90);
        const s = pool.stats();
        assert.deepEqual([s.idle, s.validating, s.validationFailures], [1, 0, 0]);
        assertInvariant(s);
        const lease = await pool.acquire();
        assert.equal(lease.value, factory.created[0]);
        assert.equal(factory.validated.length, 1, "just validated: within the bypass window");
        await lease.release();
      });
    });
  });

  it("Pool.acquire() times out during a hanging validation; the resource is destroyed at validateTimeoutMs", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1, validateTimeoutMs: 200 }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(1_000);
        factory.validatePlan.push("hang");
        const acquiring = rejection(pool.acquire({ timeoutMs: 50 }));
        await clock.tickAsync(50);
        assert.ok((await acquiring) instanceof AcquireTimeoutError);
        assert.equal(pool.stats().validating, 1);
        await clock.tickAsync(150);
        const s = pool.stats();
        assert.deepEqual([s.total, s.validationFailures, s.destroyed, s.waiting], [0, 1, 1, 0]);
        assert.equal(factory.alive, 0);
        assertInvariant(s);
        // The pool still works.
        await (await pool.acquire()).release();
      });
    });
  });

  it("Pool ignores an abort or deadline that comes after the lease resolved", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const { controller, signal, listeners } = countingSignal();
        const lease = await pool.acquire({ signal, timeoutMs: 50 }); // waited for a create
        assert.equal(listeners(), 0, "removed when the lease resolved");
        controller.abort(new Error("too late"));
        await clock.tickAsync(100);
        assert.equal(lease.released, false);
        assert.equal(lease.value.destroyed, false);
        const s = pool.stats();
        assert.deepEqual([s.active, s.aborted, s.timedOut], [1, 0, 0]);
        await lease.release();
        assert.equal(pool.stats().idle, 1);
      });
    });
  });
});

describe("Pool: failing creates", () => {
  it("Pool retries a failing create with exponential backoff and jitter, then rejects with the last error", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      const calledAt: number[] = [];
      factory.create = () => {
        factory.createCalls++;
        calledAt.push(Date.now());
        return Promise.reject(new Error(`refused #${factory.createCalls}`));
      };
      const start = Date.now();
      await withClockPool(clock, { max: 3 }, async (pool) => {
        const acquiring = rejection(pool.acquire({ timeoutMs: 10_000 }));
        await clock.tickAsync(10_000);
        const error = await acquiring;
        assert.ok(error instanceof AcquireTimeoutError);
        assert.equal((error.cause as Error).message, `refused #${factory.createCalls}`);
        // Delays grow from 50 ms (each in [ceiling/2, ceiling]) up to 5 s: 8 to 10 calls in 10 s.
        assert.ok(
          factory.createCalls >= 8 && factory.createCalls <= 10,
          `${factory.createCalls} creates`,
        );
        assert.equal(calledAt[0], start);
        for (let i = 1; i < calledAt.length; i++) {
          const gap = calledAt[i] - calledAt[i - 1];
          const ceiling = Math.min(5_000, 50 * 2 ** (i - 1));
          assert.ok(gap >= ceiling / 2 && gap <= ceiling + 1, `gap ${i}: ${gap} ms`);
        }
        assert.equal(pool.stats().createErrors, factory.createCalls);
        // With no waiter left, only one backoff timer remains and then creating stops.
        const calls = factory.createCalls;
        await clock.tickAsync(60_000);
        assert.ok(factory.createCalls <= calls + 1);
      }, factory);
    });
  });

  it("Pool spreads retry delays with jitter", async () => {
    const gapsFor = async (draw: number): Promise<number[]> => {
      const random = Math.random;
      Math.random = () => draw;
      try {
        const gaps: number[] = [];
        await withFakeTime(async (clock) => {
          const factory = new FakeFactory();
          const calledAt: number[] = [];
          factory.create = () => {
            calledAt.push(Date.now());
            return Promise.reject(new Error("refused"));
          };
          await withClockPool(clock, { max: 1 }, async (pool) => {
            const acquiring = rejection(pool.acquire({ timeoutMs: 1_000 }));
            await clock.tickAsync(1_000);
            await acquiring;
          }, factory);
          for (let i = 1; i < 4; i++) gaps.push(calledAt[i] - calledAt[i - 1]);
        });
        return gaps;
      } finally {
        Math.random = random;
      }
    };
    const low = await gapsFor(0);
    const high = await gapsFor(0.99);
    assert.deepEqual(low, [25, 50, 100]);
    for (let i = 0; i < 3; i++) assert.ok(high[i] > low[i] * 1.9, `${high} vs ${low}`);
  });

  it("Pool serves a waiter once a failing create recovers within its deadline", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = ["fail", "fail", "ok"];
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const acquiring = pool.acquire({ timeoutMs: 5_000 });
        await clock.tickAsync(1_000);
        const lease = await acquiring;
        assert.equal(factory.createCalls, 3);
        assert.equal(pool.stats().createErrors, 2);
        await lease.release();
      }, factory);
    });
  });

  it("Pool aborts a create slower than createTimeoutMs through its signal and retries", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = ["hang", "ok"];
      await withClockPool(clock, { max: 1, createTimeoutMs: 100 }, async (pool) => {
        const acquiring = pool.acquire({ timeoutMs: 5_000 });
        await clock.tickAsync(99);
        assert.equal(factory.createSignals[0].aborted, false);
        await clock.tickAsync(1);
        const signal = factory.createSignals[0];
        assert.equal(signal.aborted, true);
        assert.ok(signal.reason instanceof PoolError);
        assert.match((signal.reason as Error).message, /took longer than 100 ms/);
        await clock.tickAsync(100); // the backoff
        const lease = await acquiring;
        assert.equal(factory.createCalls, 2);
        assert.equal(pool.stats().createErrors, 1);
        assertInvariant(pool.stats());
        await lease.release();
      }, factory);
    });
  });

  it("Pool destroys the late result of a create that timed out and ignored its signal", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      ignoringSignal(factory, [500, 0]);
      await withClockPool(clock, { max: 1, createTimeoutMs: 100 }, async (pool) => {
        const acquiring = pool.acquire({ timeoutMs: 5_000 });
        await clock.tickAsync(200); // timed out at 100, retried after the backoff
        const lease = await acquiring;
        assert.equal(factory.createSignals[0].aborted, true);
        assert.equal(lease.value.id, 1_001, "served by the second create");
        await clock.tickAsync(300); // the first create resolves now
        assert.equal(factory.created.length, 2);
        const late = factory.created.find((r) => r.id === 1_000);
        assert.equal(late?.destroyed, true, "the late result is destroyed");
        const s = pool.stats();
        assert.deepEqual([s.created, s.total, s.active, s.createErrors], [1, 1, 1, 1]);
        assertInvariant(s);
        await lease.release();
      }, factory);
    });
  });

  it("Pool never leaves a waiter hanging when create hangs and ignores its signal", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.create = () => new Promise<FakeResource>(() => {});
      await withClockPool(clock, { max: 1, createTimeoutMs: 100 }, async (pool) => {
        const acquiring = rejection(pool.acquire({ timeoutMs: 1_000 }));
        await clock.tickAsync(1_000);
        const error = await acquiring;
        assert.ok(error instanceof AcquireTimeoutError);
        assert.ok(error.cause instanceof PoolError);
        assert.match(error.cause.message, /factory\.create\(\) took longer than 100 ms/);
        assertInvariant(pool.stats());
        // Abandoned creates no longer count; only the latest retry may still be in flight.
        assert.ok(pool.stats().creating <= 1);
      }, factory);
    });
  });

  for (const value of [undefined, null]) {
    it(`Pool counts a create returning ${value} as a create error (TypeError cause)`, async () => {
      await withFakeTime(async (clock) => {
        const pool = new Pool<object>({ create: () => value as unknown as object }, { max: 1 });
        try {
          const acquiring = rejection(pool.acquire({ timeoutMs: 100 }));
          await clock.tickAsync(100);
          const error = await acquiring;
          assert.ok(error instanceof AcquireTimeoutError);
          assert.ok(error.cause instanceof TypeError);
          assert.match(error.cause.message, new RegExp(`returned ${value}`));
          const s = pool.stats();
          assert.ok(s.createErrors >= 1);
          assert.deepEqual([s.created, s.total, s.creating], [0, 0, 0]);
        } finally {
          await closeUnderFakeTime(pool, clock);
        }
      });
    });
  }

  it("Pool counts a create that throws synchronously as a create error", async () => {
    await withFakeTime(async (clock) => {
      const failure = new Error("no route to host");
      const pool = new Pool<object>({
        create: () => {
          throw failure;
        },
      }, { max: 1 });
      try {
        const acquiring = rejection(pool.acquire({ timeoutMs: 100 }));
        await clock.tickAsync(100);
        const error = await acquiring;
        assert.ok(error instanceof AcquireTimeoutError);
        assert.equal(error.cause, failure);
        assertInvariant(pool.stats());
      } finally {
        await closeUnderFakeTime(pool, clock);
      }
    });
  });
});

describe("Pool: validation", () => {
  it("Pool destroys a resource that fails validation and hands out another idle one", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 2 }, async (pool, factory) => {
        const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
        const [ra, rb] = [a.value, b.value];
        await a.release();
        await b.release(); // LIFO: b is taken first
        await clock.tickAsync(1_000);
        rb.broken = true;
        const lease = await pool.acquire();
        assert.equal(lease.value, ra);
        assert.equal(rb.destroyed, true);
        assert.deepEqual(factory.validated, [rb, ra]);
        assert.equal(factory.createCalls, 2, "no create needed");
        assert.equal(pool.stats().validationFailures, 1);
        assertInvariant(pool.stats());
        await lease.release();
      });
    });
  });

  it("Pool destroys a resource whose validation throws and creates a new one transparently", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(1_000);
        factory.validatePlan.push("fail");
        const lease = await pool.acquire();
        assert.equal(lease.value, factory.created[1]);
        assert.equal(factory.created[0].destroyed, true);
        assert.equal(pool.stats().validationFailures, 1);
        await lease.release();
      });
    });
  });

  it("Pool destroys a resource whose validation exceeds validateTimeoutMs, aborting it", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1, validateTimeoutMs: 100 }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(1_000);
        let validateSignal: AbortSignal | undefined;
        const validate = factory.validate.bind(factory);
        factory.validate = (r, signal) => {
          validateSignal = signal;
          return validate(r, signal);
        };
        factory.validatePlan.push("hang");
        const acquiring = pool.acquire({ timeoutMs: 5_000 });
        await clock.tickAsync(99);
        await assertPending(acquiring);
        await clock.tickAsync(1);
        const lease = await acquiring;
        assert.equal(validateSignal?.aborted, true);
        assert.equal(lease.value, factory.created[1]);
        assert.equal(factory.created[0].destroyed, true);
        assert.equal(pool.stats().validationFailures, 1);
        await lease.release();
      });
    });
  });

  it("Pool skips validation of a resource returned less than validateBypassMs ago", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(499);
        await (await pool.acquire()).release();
        assert.equal(factory.validated.length, 0, "499 ms < 500 ms");
        await clock.tickAsync(500);
        await (await pool.acquire()).release();
        assert.equal(factory.validated.length, 1, "500 ms ≥ 500 ms");
      });
    });
  });

  it("Pool honours a custom validateBypassMs", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1, validateBypassMs: 0 }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await (await pool.acquire()).release();
        assert.equal(factory.validated.length, 1, "0 ms: always validated");
      });
      await withClockPool(clock, { max: 1, validateBypassMs: 10_000 }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(9_999);
        await (await pool.acquire()).release();
        assert.equal(factory.validated.length, 0);
      });
    });
  });
});

describe("Pool: hooks that throw", () => {
  it("Pool counts a budget whose tryAcquire() throws, or gives no permit, as a failed create", async () => {
    await withFakeTime(async (clock) => {
      for (const misbehave of ["throws", "returns a string"] as const) {
        let calls = 0;
        const budget = {
          tryAcquire: () => {
            if (++calls > 1) return Promise.resolve({ release() {} });
            if (misbehave === "throws") throw new Error("budget backend unavailable");
            return "granted" as never; // neither a promise nor a permit
          },
          onAvailable: () => () => {},
        };
        const errors: unknown[] = [];
        const pool = new Pool({ create: () => ({}), destroy: () => {} }, {
          max: 1,
          budget,
          onEvent: (e) => e.type === "create-error" && errors.push(e.error),
        });
        const acquiring = pool.acquire({ timeoutMs: 1_000 });
        await clock.tickAsync(0);
        const s = pool.stats();
        assert.deepEqual([s.createErrors, s.creating, s.total], [1, 0, 0], misbehave);
        assert.match(
          String(errors[0]),
          misbehave === "throws"
            ? /budget backend unavailable/
            : /TypeError: budget\.tryAcquire\(\) must resolve with a permit or undefined, received string/,
        );
        await clock.tickAsync(100); // the backoff retries; the budget grants this time
        const lease = await acquiring;
        assert.equal(calls, 2);
        await lease.release();
        await closeUnderFakeTime(pool, clock);
        assertInvariant(pool.stats());
        assert.equal(clock.countTimers(), 0, misbehave);
      }
    });
  });

  it("Pool keeps min on a full budget by retrying each reap interval, not by listening", async () => {
    await withFakeTime(async (clock) => {
      let used = 1; // one of the two permits is held elsewhere
      let asked = 0;
      const listeners = new Set<() => void>();
      const budget = {
        tryAcquire: () => {
          asked++;
          if (used === 2) return Promise.resolve(undefined);
          used++;
          return Promise.resolve({ release: () => void used-- });
        },
        onAvailable: (listener: () => void) => {
          listeners.add(listener);
          return () => void listeners.delete(listener);
        },
      };
      const pool = new Pool({ create: () => ({}), destroy: () => {} }, {
        min: 2,
        max: 2,
        budget,
        reapIntervalMs: 1_000,
      });
      await clock.tickAsync(10);
      assert.deepEqual([pool.stats().total, asked, listeners.size], [1, 2, 0]);
      used--; // the other holder gives its permit back, telling nobody
      await clock.tickAsync(1_000);
      assert.deepEqual([pool.stats().total, listeners.size], [2, 0]);
      assert.equal(asked, 3, "one retry after the interval, not a tight loop");
      await closeUnderFakeTime(pool, clock);
    });
  });

  it("Pool destroys a resource whose synchronous reset() closed the pool", async () => {
    const factory = new FakeFactory();
    let closing: Promise<void> | undefined;
    const pool: Pool<FakeResource> = new Pool({
      create: (signal) => factory.create(signal),
      destroy: (r) => factory.destroy(r),
      reset: () => {
        closing ??= pool.close({ timeoutMs: 60_000 }); // e.g. a shutdown begun inside the hook
      },
    }, { max: 1 });
    const lease = await pool.acquire();
    await lease.release();
    assert.ok(closing);
    await closing; // would wait out its 60 s for a resource parked idle after close
    const s = pool.stats();
    assert.deepEqual([s.total, s.idle, s.destroyed], [0, 0, 1]);
    assert.equal(factory.alive, 0);
  });

  it("Pool evicts a resource that its synchronous reset() evicted", async () => {
    await withPool({ max: 1 }, async (pool, factory) => {
      const original = factory.reset.bind(factory);
      factory.reset = (r) => {
        void pool.evict(); // the hook retires every resource, this one included
        return original(r);
      };
      await (await pool.acquire()).release();
      const s = pool.stats();
      assert.deepEqual([s.total, s.destroyed], [0, 1]);
    });
  });
  it("Pool keeps its counts when destroy() throws", async () => {
    await withPool({ max: 2 }, async (pool, factory) => {
      factory.destroyThrows = true;
      const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
      await a.destroy();
      await b.release();
      await pool.evict();
      const s = pool.stats();
      assert.deepEqual([s.total, s.destroying, s.destroyed, s.created], [0, 0, 2, 2]);
      assertInvariant(s);
      const lease = await pool.acquire();
      assert.equal(pool.stats().total, 1);
      await lease.release();
    });
  });

  it("Pool counts a destroy in flight against max: a waiter's create starts once it finished", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.destroy = (r: FakeResource) =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            r.destroyed = true;
            factory.destroyed.push(r);
            resolve();
          }, 100)
        );
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const lease = await pool.acquire();
        const destroying = lease.destroy();
        const waiting = pool.acquire({ timeoutMs: Infinity });
        await clock.tickAsync(99);
        assert.equal(factory.createCalls, 1, "no create while the destroy runs");
        assert.deepEqual([pool.stats().destroying, pool.stats().waiting], [1, 1]);
        assertInvariant(pool.stats());
        await clock.tickAsync(1);
        await destroying;
        const next = await settled(waiting, "served by a new resource");
        assert.equal(factory.createCalls, 2);
        assert.equal(factory.alive, 1);
        await next.release();
      }, factory);
    });
  });

  it("Pool frees the slot of a destroy that exceeds destroyTimeoutMs", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.destroy = () => new Promise<void>(() => {});
      await withClockPool(clock, { max: 1, destroyTimeoutMs: 100 }, async (pool) => {
        const lease = await pool.acquire();
        const destroying = lease.destroy();
        const waiting = pool.acquire({ timeoutMs: Infinity });
        await clock.tickAsync(99);
        await assertPending(destroying);
        assert.equal(pool.stats().destroying, 1);
        await clock.tickAsync(1);
        await destroying; // resolves: release() and destroy() never reject
        const next = await settled(waiting, "served by a new resource");
        const s = pool.stats();
        assert.deepEqual([s.destroying, s.destroyed, s.created, s.active], [0, 1, 2, 1]);
        assertInvariant(s);
        await next.release();
      }, factory);
    });
  });

  it("Pool destroys a resource whose synchronous validate() throws", async () => {
    await withFakeTime(async (clock) => {
      let throws = true;
      const factory = Object.assign(new FakeFactory(), {
        validate: () => {
          if (throws) throw new Error("validate failed");
          return true;
        },
      });
      await withClockPool(clock, { max: 1 }, async (pool) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(1_000);
        const lease = await pool.acquire();
        throws = false;
        assert.equal(lease.value, factory.created[1]);
        assert.equal(factory.created[0].destroyed, true);
        const s = pool.stats();
        assert.deepEqual([s.validationFailures, s.validating, s.total], [1, 0, 1]);
        await lease.release();
      }, factory);
    });
  });

  it("Pool runs reset() on release before reuse", async () => {
    await withPool({ max: 1 }, async (pool, factory) => {
      const lease = await pool.acquire();
      lease.value.dirty = true;
      const value = lease.value;
      await lease.release();
      assert.deepEqual(factory.resets, [value]);
      assert.equal(value.dirty, false);
      const again = await pool.acquire();
      assert.equal(again.value, value);
      await again.release();
    });
  });

  it("Pool destroys a resource whose reset() throws and serves the waiter with a new one", async () => {
    await withPool({ max: 1 }, async (pool, factory) => {
      const held = await pool.acquire();
      const waiting = pool.acquire({ timeoutMs: Infinity });
      await flush();
      factory.resetThrows = true;
      await held.release();
      const lease = await settled(waiting, "served");
      assert.equal(factory.created[0].destroyed, true);
      assert.equal(lease.value, factory.created[1]);
      const s = pool.stats();
      assert.deepEqual([s.destroyed, s.created, s.active, s.idle], [1, 2, 1, 0]);
      assertInvariant(s);
      factory.resetThrows = false;
      await lease.release();
    });
  });

  it("Pool destroys a resource whose reset() exceeds resetTimeoutMs", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.reset = () => new Promise<void>(() => {});
      await withClockPool(clock, { max: 1, resetTimeoutMs: 100 }, async (pool) => {
        const lease = await pool.acquire();
        const releasing = lease.release();
        await clock.tickAsync(99);
        await assertPending(releasing);
        assert.equal(pool.stats().validating, 1);
        await clock.tickAsync(1);
        await releasing;
        assert.equal(factory.created[0].destroyed, true);
        assertInvariant(pool.stats());
        assert.equal(pool.stats().total, 0);
      }, factory);
    });
  });

  it("Pool destroys a resource after maxUses leases and tops up to min", async () => {
    await withPool({ min: 1, max: 1, maxUses: 2 }, async (pool, factory) => {
      await pool.ready();
      await (await pool.acquire()).release();
      await (await pool.acquire()).release(); // second use: retired
      assert.equal(factory.created[0].destroyed, true);
      await flush();
      await pool.ready();
      assert.equal(pool.stats().idle, 1, "min kept");
      assert.equal(factory.created.length, 2);
    });
  });
});

describe("Pool.use()", () => {
  it("Pool.use() resolves with the callback's result and releases the resource", async () => {
    await withPool({}, async (pool, factory) => {
      const result = await pool.use(async (r) => {
        await flush();
        assert.equal(pool.stats().active, 1);
        return r.id * 10;
      });
      assert.equal(result, 10);
      const s = pool.stats();
      assert.deepEqual([s.active, s.idle, s.released], [0, 1, 1]);
      assert.deepEqual(factory.resets, [factory.created[0]]);
    });
  });

  it("Pool.use() releases the resource and rethrows when the callback throws", async () => {
    await withPool({}, async (pool, factory) => {
      const failure = new Error("constraint violated");
      const error = await rejection(pool.use(() => {
        throw failure;
      }));
      assert.equal(error, failure);
      const s = pool.stats();
      assert.deepEqual([s.active, s.idle, s.destroyed], [0, 1, 0]);
      assert.equal(factory.created[0].destroyed, false);
    });
  });

  it("Pool.use() destroys the resource when isBroken() says the error broke it", async () => {
    const factory = new FakeFactory();
    const seen: unknown[] = [];
    const hooks = Object.assign(factory, {
      isBroken: (_r: FakeResource, error: unknown) => {
        seen.push(error);
        return (error as Error).message === "connection reset";
      },
    });
    await withPool({}, async (pool) => {
      const broken = new Error("connection reset");
      assert.equal(await rejection(pool.use(() => Promise.reject(broken))), broken);
      assert.equal(factory.created[0].destroyed, true);
      const harmless = new Error("syntax error");
      assert.equal(await rejection(pool.use(() => Promise.reject(harmless))), harmless);
      assert.equal(factory.created[1].destroyed, false);
      assert.deepEqual(seen, [broken, harmless]);
      const s = pool.stats();
      assert.deepEqual([s.destroyed, s.idle, s.released], [1, 1, 2]);
    }, hooks);
  });

  it("Pool.use() destroys the resource when isBroken() itself throws, and rethrows the original error", async () => {
    const factory = Object.assign(new FakeFactory(), {
      isBroken: () => {
        throw new Error("isBroken failed");
      },
    });
    await withPool({}, async (pool) => {
      const failure = new Error("query failed");
      assert.equal(await rejection(pool.use(() => Promise.reject(failure))), failure);
      assert.equal(factory.created[0].destroyed, true);
      assertInvariant(pool.stats());
    }, factory);
  });

  it("Pool.use() does not call isBroken() when the callback succeeds", async () => {
    let calls = 0;
    const factory = Object.assign(new FakeFactory(), { isBroken: () => (calls++, true) });
    await withPool({}, async (pool) => {
      await pool.use(() => "ok");
      assert.equal(calls, 0);
      assert.equal(pool.stats().idle, 1);
    }, factory);
  });

  it("Pool.use() rejects with a TypeError when given no function, acquiring nothing", async () => {
    await withPool({}, async (pool, factory) => {
      const use = pool.use as (fn: unknown) => Promise<unknown>;
      for (const fn of [undefined, null, 42, "fn", {}]) {
        const error = await rejection(use.call(pool, fn));
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /use\(\) needs a function/);
      }
      assert.equal(factory.createCalls, 0);
      assert.equal(pool.stats().acquired, 0);
    });
  });

  it("Pool.use() passes its options to acquire: an aborted signal rejects before the callback", async () => {
    await withPool({}, async (pool) => {
      const controller = new AbortController();
      controller.abort(new Error("cancelled"));
      let called = false;
      await assert.rejects(
        pool.use(() => (called = true), { signal: controller.signal }),
        /cancelled/,
      );
      assert.equal(called, false);
    });
  });
});

describe("Pool: maxWaiting", () => {
  it("Pool.acquire() rejects with PoolExhaustedError when at max with maxWaiting waiters queued", async () => {
    await withPool({ max: 1, maxWaiting: 2 }, async (pool) => {
      const held = await pool.acquire();
      const queued = [pool.acquire({ timeoutMs: Infinity }), pool.acquire({ timeoutMs: Infinity })];
      const error = await rejection(pool.acquire());
      assert.ok(error instanceof PoolExhaustedError);
      assert.equal(error.maxWaiting, 2);
      assert.equal(error.stats?.waiting, 2);
      assert.equal(error.stats?.active, 1);
      const s = pool.stats();
      assert.deepEqual([s.exhausted, s.waiting], [1, 2]);
      await held.release();
      const first = await queued[0];
      // A place in the queue freed up.
      const third = pool.acquire({ timeoutMs: Infinity });
      await first.release();
      await (await queued[1]).release();
      await (await third).release();
    });
  });

  it("Pool.acquire() with maxWaiting 0 is refused only when nothing is idle and max is reached", async () => {
    await withPool({ max: 2, maxWaiting: 0 }, async (pool) => {
      const a = await pool.acquire(); // below max: creates, never refused
      const b = await pool.acquire();
      await assert.rejects(pool.acquire(), PoolExhaustedError);
      await a.release();
      const c = await pool.acquire(); // idle
      await c.release();
      await b.release();
      assert.equal(pool.stats().exhausted, 1);
    });
  });
});

describe("Pool: idleOrder", () => {
  for (const [idleOrder, expected] of [["lifo", 1], ["fifo", 0]] as const) {
    it(`Pool with idleOrder "${idleOrder}" hands out the ${idleOrder === "lifo" ? "most recently" : "least recently"} returned resource`, async () => {
      await withPool({ max: 2, idleOrder }, async (pool) => {
        const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
        const values = [a.value, b.value];
        await a.release();
        await b.release();
        const lease = await pool.acquire();
        assert.equal(lease.value, values[expected]);
        await lease.release();
        // lifo takes it again; fifo moves on to the other one.
        const next = await pool.acquire();
        assert.equal(next.value, idleOrder === "lifo" ? values[expected] : values[1 - expected]);
        await next.release();
      });
    });
  }
});

describe("Pool.ready()", () => {
  it("Pool.ready() resolves at once when min is 0", async () => {
    await withPool({}, async (pool, factory) => {
      assert.equal(await isPending(pool.ready()), false);
      assert.equal(factory.createCalls, 0);
    });
  });

  it("Pool.ready() waits until min resources exist", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = [{ delayMs: 50 }, { delayMs: 80 }];
      await withClockPool(clock, { min: 2 }, async (pool) => {
        const ready = pool.ready();
        await clock.tickAsync(129); // one create at a time: 50 ms, then 80 ms
        await assertPending(ready);
        assert.equal(pool.stats().idle, 1);
        await clock.tickAsync(1);
        await ready;
        assert.equal(pool.stats().idle, 2);
        assert.equal(await isPending(pool.ready()), false, "already there");
      }, factory);
    });
  });

  it("Pool.ready() rejects with a PoolError carrying the create error after its timeout", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      const failure = new Error("auth failed");
      factory.create = () => {
        factory.createCalls++;
        return Promise.reject(failure);
      };
      await withClockPool(clock, { min: 1 }, async (pool) => {
        const ready = rejection(pool.ready({ timeoutMs: 500 }));
        await clock.tickAsync(499);
        assert.equal(pool.stats().waiting, 0);
        await clock.tickAsync(1);
        const error = await ready;
        assert.ok(error instanceof PoolError);
        assert.equal(error.cause, failure);
        assert.ok(factory.createCalls > 1, "min upkeep retried");
      }, factory);
    });
  });

  it("Pool.ready() rejects with PoolClosedError when the pool closes", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = ["hang", "hang"];
      const pool = new Pool(factory, { min: 2 });
      const { signal, listeners } = countingSignal();
      const ready = rejection(pool.ready({ signal, timeoutMs: 5_000 }));
      await flush();
      assert.equal(listeners(), 1);
      await pool.close();
      assert.ok((await ready) instanceof PoolClosedError);
      assert.equal(listeners(), 0);
      assert.equal(clock.countTimers(), 0, "its deadline timer is gone");
    });
  });

  it("Pool.ready() rejects with signal.reason when aborted, and removes its listener", async () => {
    const factory = new FakeFactory();
    factory.createPlan = ["hang"];
    await withPool({ min: 1 }, async (pool) => {
      const { controller, signal, listeners } = countingSignal();
      const ready = rejection(pool.ready({ signal, timeoutMs: Infinity }));
      await flush();
      assert.equal(listeners(), 1);
      const reason = new Error("shutting down");
      controller.abort(reason);
      assert.equal(await ready, reason);
      assert.equal(listeners(), 0);
    }, factory);
  });
});

describe("Pool.close()", () => {
  it("Pool.close() called from onEvent on a create error leaves no backoff timer", async () => {
    await withFakeTime(async (clock) => {
      let closing: Promise<void> | undefined;
      const pool: Pool<object> = new Pool<object>({
        create: () => {
          throw new Error("db down");
        },
      }, {
        max: 1,
        onEvent: (e) => {
          if (e.type === "create-error") closing ??= pool.close();
        },
      });
      const acquiring = rejection(pool.acquire({ timeoutMs: 1_000 }));
      await clock.tickAsync(0);
      assert.ok((await acquiring) instanceof PoolClosedError);
      await closing;
      assert.equal(clock.countTimers(), 0, "no retry armed after close");
    });
  });
  it("Pool.close() rejects every waiter with PoolClosedError", async () => {
    await withPool({ max: 1 }, async (pool) => {
      const held = await pool.acquire();
      const waiters = [1, 2, 3].map(() => rejection(pool.acquire({ timeoutMs: Infinity })));
      const closing = pool.close({ timeoutMs: 0 });
      for (const waiter of waiters) assert.ok((await waiter) instanceof PoolClosedError);
      assert.equal(pool.stats().waiting, 0);
      await closing;
      assert.equal(held.released, true);
    });
  });

  it("Pool.acquire() after close() rejects at once with PoolClosedError, creating nothing", async () => {
    const factory = new FakeFactory();
    const pool = new Pool(factory);
    const closing = pool.close();
    assert.equal(pool.closed, true);
    await assert.rejects(pool.acquire(), PoolClosedError);
    await closing;
    await assert.rejects(pool.acquire(), PoolClosedError);
    await assert.rejects(pool.use(() => 1), PoolClosedError);
    assert.equal(factory.createCalls, 0);
  });

  it("Pool.close() waits for outstanding leases up to timeoutMs, then destroys them", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      const pool = new Pool(factory, { max: 2 });
      const [kept, returned] = await Promise.all([pool.acquire(), pool.acquire()]);
      const closing = pool.close({ timeoutMs: 100 });
      await clock.tickAsync(50);
      await returned.release(); // destroyed, not kept idle
      assert.equal(factory.created[1].destroyed, true);
      await clock.tickAsync(49);
      await assertPending(closing);
      assert.equal(kept.value.destroyed, false, "still usable before the timeout");
      await clock.tickAsync(1);
      await closing;
      assert.equal(factory.created[0].destroyed, true);
      assert.equal(kept.released, true);
      assert.throws(() => kept.value, PoolError);
      // The revoked lease counts as given back, once: releasing it later is a no-op.
      assert.equal(pool.stats().released, 2);
      await kept.release();
      await kept.destroy();
      const s = pool.stats();
      assert.deepEqual([s.total, s.released, s.destroyed], [0, 2, 2]);
      assert.equal(factory.destroyed.length, 2);
    });
  });

  it("Pool.close() resolves as soon as the last lease is released", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      const pool = new Pool(factory);
      const lease = await pool.acquire();
      const closing = pool.close(); // closeTimeoutMs 30 s
      await clock.tickAsync(10);
      await assertPending(closing);
      await lease.release();
      assert.equal(await isPending(closing), false);
      assert.equal(factory.alive, 0);
    });
  });

  it("Pool.close() destroys idle resources", async () => {
    const factory = new FakeFactory();
    const pool = new Pool(factory, { min: 3 });
    await pool.ready();
    await pool.close();
    assert.equal(factory.destroyed.length, 3);
    const s = pool.stats();
    assert.deepEqual([s.total, s.idle, s.destroyed], [0, 0, 3]);
  });

  it("Pool.close() destroys every resource exactly once, including ones created, validated or reset meanwhile", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      const slowReset: FakeResource[] = [];
      factory.reset = (r: FakeResource) => {
        factory.resets.push(r);
        if (!slowReset.includes(r)) return;
        return new Promise<void>((resolve) => setTimeout(resolve, 30));
      };
      const pool = new Pool(factory, { max: 5 });
      const leases = await Promise.all([1, 2, 3, 4].map(() => pool.acquire()));
      await leases[0].release(); // idle, then validated below
      await clock.tickAsync(1_000);
      factory.validatePlan.push({ delayMs: 40 });
      const validating = rejection(pool.acquire({ timeoutMs: Infinity }));
      await flush();
      assert.equal(pool.stats().validating, 1);
      slowReset.push(leases[1].value);
      const resetting = leases[1].release(); // being reset (and counted to serve a waiter)
      ignoringSignal(factory, [20]);
      const waiters = [1, 2].map(() => rejection(pool.acquire({ timeoutMs: Infinity })));
      await flush();
      assert.equal(pool.stats().creating, 1, "a create in flight");
      assert.equal(pool.stats().validating, 2);
      const closing = pool.close({ timeoutMs: 100 });
      await clock.tickAsync(50);
      await leases[2].release(); // released while closing: destroyed
      // leases[3] stays out until the close timeout.
      await clock.tickAsync(50);
      await closing;
      await resetting;
      for (const waiter of [validating, ...waiters]) {
        assert.ok((await waiter) instanceof PoolClosedError);
      }
      assert.equal(leases[3].released, true);
      assert.equal(factory.created.length, 5);
      assert.equal(factory.alive, 0);
      for (const r of factory.created) assert.equal(r.destroyed, true, `resource ${r.id}`);
      // FakeFactory.destroy() throws on a second destroy: each was destroyed exactly once.
      assert.equal(factory.destroyed.length, 5);
      const s = pool.stats();
      assert.deepEqual([s.total, s.creating, s.destroying], [0, 0, 0]);
      assertInvariant(s);
    });
  });

  it("Pool.close() aborts creates in flight through their signal", async () => {
    const factory = new FakeFactory();
    factory.createPlan = ["hang"];
    const pool = new Pool(factory);
    const acquiring = rejection(pool.acquire({ timeoutMs: Infinity }));
    await flush();
    await pool.close();
    assert.equal(factory.createSignals[0].aborted, true);
    assert.ok(factory.createSignals[0].reason instanceof PoolClosedError);
    assert.ok((await acquiring) instanceof PoolClosedError);
    assert.equal(pool.stats().creating, 0);
  });

  it("Pool.close() returns the same promise when called again", async () => {
    const pool = new Pool(new FakeFactory());
    const lease = await pool.acquire();
    const first = pool.close({ timeoutMs: 1_000 });
    const second = pool.close({ timeoutMs: 0 });
    assert.equal(second, first);
    assert.equal(pool.close(), first);
    assert.equal(pool[Symbol.asyncDispose](), first);
    await lease.release();
    await first;
    assert.equal(pool.close(), first);
  });

  it("Pool.close() leaves no timer and no signal listener behind", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      const pool = new Pool(factory, { max: 2, min: 0, leakDetectionMs: 1_000, keepaliveMs: 500 });
      const held = await pool.acquire(); // starts the reaper
      await held.release();
      const lease = await pool.acquire();
      factory.createPlan = ["fail", "hang"];
      const signals = [countingSignal(), countingSignal()];
      // A failing create (then a backoff timer), then a hanging one with its create timeout.
      const waiting = [
        rejection(pool.acquire({ signal: signals[0].signal, timeoutMs: 5_000 })),
        rejection(pool.acquire({ signal: signals[1].signal, timeoutMs: Infinity })),
      ];
      await clock.tickAsync(100);
      assert.equal(factory.createCalls, 3);
      assert.ok(clock.countTimers() > 0);
      assert.equal(signals[0].listeners() + signals[1].listeners(), 2);
      const closing = pool.close({ timeoutMs: 200 });
      await clock.tickAsync(200);
      await closing;
      for (const w of waiting) assert.ok((await w) instanceof PoolClosedError);
      assert.equal(lease.released, true);
      assert.equal(clock.countTimers(), 0, "no timer left");
      for (const s of signals) assert.equal(s.listeners(), 0, "no listener left");
      assert.equal(factory.alive, 0);
    });
  });

  it("Pool.close() while idle with min kept warm stops the reaper and destroys everything", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      const pool = new Pool(factory, { min: 2, reapIntervalMs: 100 });
      await pool.ready();
      await clock.tickAsync(1_000);
      assert.ok(clock.countTimers() > 0, "the reaper runs");
      await pool.close();
      assert.equal(clock.countTimers(), 0);
      assert.equal(factory.alive, 0);
      await clock.tickAsync(10_000);
      assert.equal(factory.createCalls, 2, "nothing is created after close");
    });
  });
});

describe("Pool: accounting", () => {
  it("Pool keeps created − destroyed = idle + active + validating through a lease's life", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 2 }, async (pool, factory) => {
        const snapshots = [pool.stats()];
        const lease: Lease<FakeResource> = await pool.acquire();
        snapshots.push(pool.stats());
        factory.resetDelayMs = 5; // an async reset: the resource is checked while it runs
        const releasing = lease.release();
        snapshots.push(pool.stats());
        await clock.tickAsync(5);
        await releasing;
        snapshots.push(pool.stats());
        factory.resetDelayMs = 0;
        await clock.tickAsync(1_000);
        factory.validatePlan.push({ delayMs: 10 });
        const again = pool.acquire();
        await flush();
        snapshots.push(pool.stats());
        await clock.tickAsync(10);
        const second = await again;
        snapshots.push(pool.stats());
        await second.destroy();
        snapshots.push(pool.stats());
        for (const s of snapshots) assertInvariant(s);
        assert.deepEqual(
          snapshots.map((s) => [s.idle, s.active, s.validating]),
          [[0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]],
        );
      });
    });
  });
});
