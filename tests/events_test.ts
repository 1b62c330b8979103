import { describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { type Lease, Pool, type PoolEvent, type PoolEventType } from "../mod.ts";
import { EventHub } from "../src/events.ts";
import {
  assertPending,
  countingSignal,
  FakeFactory,
  type FakeResource,
  flush,
  withFakeTime,
  withPool,
} from "./_helpers.ts";

/** Reads events until the iterator ends (the pool closed). */
async function drain(events: AsyncIterable<PoolEvent>): Promise<PoolEvent[]> {
  const out: PoolEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

function only<K extends PoolEventType>(
  events: PoolEvent[],
  type: K,
): Extract<PoolEvent, { type: K }>[] {
  return events.filter((e): e is Extract<PoolEvent, { type: K }> => e.type === type);
}

/** Runs `fn`, closes the pool, and returns every event emitted from the start. */
async function recorded(
  options: ConstructorParameters<typeof Pool>[1],
  fn: (pool: Pool<FakeResource>, factory: FakeFactory) => Promise<void>,
  factory = new FakeFactory(),
): Promise<PoolEvent[]> {
  const pool = new Pool(factory, options);
  const events = pool.events();
  try {
    await fn(pool, factory);
  } finally {
    await pool.close({ timeoutMs: 0 });
  }
  return drain(events);
}

const ev = (iterator: AsyncIterator<PoolEvent>) =>
  iterator.next().then((r) => r.done ? "done" : r.value);

describe("Pool.events()", () => {
  it("Pool.events() reports create, acquire, release, destroy and close for one lease", async () => {
    await withFakeTime(async (clock) => {
      const start = Date.now();
      const events = await recorded({}, async (pool) => {
        const lease = await pool.acquire();
        await clock.tickAsync(250);
        await lease.release();
      });
      assert.deepEqual(events.map((e) => e.type), [
        "create",
        "acquire",
        "release",
        "destroy",
        "close",
      ]);
      const [create, acquire, release, destroy] = events;
      assert.deepEqual(create, { type: "create", time: start, id: 1, tookMs: 0 });
      assert.deepEqual(acquire, { type: "acquire", time: start, id: 1, waitedMs: 0, hit: false });
      assert.deepEqual(release, { type: "release", time: start + 250, id: 1, heldMs: 250 });
      assert.equal(destroy.type === "destroy" && destroy.reason, "close");
      assert.equal(destroy.type === "destroy" && destroy.id, 1);
    });
  });

  it("Pool.events() create carries how long factory.create() took", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = [{ delayMs: 40 }];
      const events = await recorded({}, async (pool) => {
        const acquiring = pool.acquire();
        await clock.tickAsync(40);
        await (await acquiring).release();
      }, factory);
      const [create] = only(events, "create");
      assert.equal(create.tookMs, 40);
      const [acquire] = only(events, "acquire");
      assert.equal(acquire.waitedMs, 40);
      assert.equal(acquire.hit, false);
    });
  });

  it("Pool.events() create-error carries the error and the consecutive attempt", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = ["fail", "fail"];
      const events = await recorded({}, async (pool) => {
        const acquiring = pool.acquire();
        await clock.tickAsync(1_000); // two backoffs
        await (await acquiring).release();
      }, factory);
      const errors = only(events, "create-error");
      assert.deepEqual(errors.map((e) => e.attempt), [1, 2]);
      assert.equal((errors[0].error as Error).message, "create failed");
      assert.equal(only(events, "create").length, 1);
    });
  });

  it("Pool.events() acquire reports a hit with no wait for an idle resource", async () => {
    await withFakeTime(async () => {
      const events = await recorded({}, async (pool) => {
        await (await pool.acquire()).release();
        await (await pool.acquire()).release();
      });
      const acquires = only(events, "acquire");
      assert.deepEqual(acquires.map((e) => [e.id, e.hit, e.waitedMs]), [
        [1, false, 0],
        [1, true, 0],
      ]);
    });
  });

  it("Pool.events() acquire reports how long a queued acquire waited for a hand-off", async () => {
    await withFakeTime(async (clock) => {
      const events = await recorded({ max: 1 }, async (pool) => {
        const held = await pool.acquire();
        const queued = pool.acquire();
        await clock.tickAsync(75);
        await held.release();
        await (await queued).release();
      });
      const acquires = only(events, "acquire");
      assert.equal(acquires.length, 2);
      assert.equal(acquires[1].waitedMs, 75);
      assert.equal(acquires[1].hit, false, "a hand-off is not an idle hit");
      const releases = only(events, "release");
      assert.deepEqual(releases.map((e) => e.heldMs), [75, 0]);
    });
  });

  describe("destroy reasons", () => {
    it("Pool.events() destroy has reason error after lease.destroy()", async () => {
      const events = await recorded({}, async (pool) => {
        await (await pool.acquire()).destroy();
      });
      assert.deepEqual(only(events, "destroy").map((e) => e.reason), ["error"]);
    });

    it("Pool.events() destroy has reason max-uses once maxUses leases were served", async () => {
      const events = await recorded({ maxUses: 1 }, async (pool) => {
        await (await pool.acquire()).release();
      });
      assert.deepEqual(only(events, "destroy").map((e) => e.reason), ["max-uses"]);
    });

    it("Pool.events() destroy has reason lifetime when maxLifetimeMs passed", async () => {
      await withFakeTime(async (clock) => {
        const options = { maxLifetimeMs: 1_000, lifetimeJitter: 0, reapIntervalMs: 100 };
        const events = await recorded(options, async (pool) => {
          await (await pool.acquire()).release();
          await clock.tickAsync(1_100);
        });
        assert.deepEqual(only(events, "destroy").map((e) => e.reason), ["lifetime"]);
      });
    });

    it("Pool.events() destroy has reason idle when idleTimeoutMs passed above min", async () => {
      await withFakeTime(async (clock) => {
        const events = await recorded({ idleTimeoutMs: 500, reapIntervalMs: 100 }, async (pool) => {
          await (await pool.acquire()).release();
          await clock.tickAsync(600);
        });
        assert.deepEqual(only(events, "destroy").map((e) => e.reason), ["idle"]);
      });
    });

    it("Pool.events() validate-fail then destroy with reason invalid when validation fails", async () => {
      const events = await recorded({ validateBypassMs: 0 }, async (pool) => {
        const lease = await pool.acquire();
        const broken = lease.value;
        await lease.release();
        broken.broken = true;
        await (await pool.acquire()).release();
      });
      const fail = only(events, "validate-fail");
      assert.equal(fail.length, 1);
      assert.equal(fail[0].id, 1);
      const destroys = only(events, "destroy");
      assert.deepEqual(destroys.map((e) => [e.id, e.reason]), [[1, "invalid"], [2, "close"]]);
      assert.ok(events.indexOf(fail[0]) < events.indexOf(destroys[0]));
    });

    it("Pool.events() validate-fail carries the error when validation throws", async () => {
      const factory = new FakeFactory();
      const events = await recorded({ validateBypassMs: 0 }, async (pool) => {
        await (await pool.acquire()).release();
        factory.validatePlan = ["fail"];
        await (await pool.acquire()).release();
      }, factory);
      const [fail] = only(events, "validate-fail");
      assert.equal((fail.error as Error).message, "validate failed");
      const [destroy] = only(events, "destroy");
      assert.equal(destroy.reason, "invalid");
      assert.equal(destroy.error, fail.error);
    });

    it("Pool.events() destroy has reason evicted after evict()", async () => {
      const events = await recorded({ min: 1 }, async (pool) => {
        await pool.ready();
        assert.equal(await pool.evict(), 1);
      });
      assert.equal(only(events, "destroy")[0].reason, "evicted");
    });

    it("Pool.events() destroy has reason close for idle and leased resources on close()", async () => {
      const events = await recorded({ max: 2 }, async (pool) => {
        const a = await pool.acquire();
        await (await pool.acquire()).release();
        void a; // still leased when the pool closes
      });
      assert.deepEqual(only(events, "destroy").map((e) => e.reason), ["close", "close"]);
      assert.equal(events.at(-1)!.type, "close");
    });
  });

  it("Pool.events() timeout reports how long the acquire waited", async () => {
    await withFakeTime(async (clock) => {
      const events = await recorded({ max: 1 }, async (pool) => {
        const held = await pool.acquire();
        const late = pool.acquire({ timeoutMs: 50 });
        const rejected = assert.rejects(late);
        await clock.tickAsync(50);
        await rejected;
        await held.release();
      });
      assert.deepEqual(only(events, "timeout").map((e) => e.waitedMs), [50]);
    });
  });

  it("Pool.events() abort carries signal.reason and the time waited", async () => {
    await withFakeTime(async (clock) => {
      const before = new Error("before");
      const during = new Error("during");
      const events = await recorded({ max: 1 }, async (pool) => {
        await assert.rejects(pool.acquire({ signal: AbortSignal.abort(before) }));
        const held = await pool.acquire();
        const controller = new AbortController();
        const queued = pool.acquire({ signal: controller.signal });
        const rejected = assert.rejects(queued);
        await clock.tickAsync(30);
        controller.abort(during);
        await rejected;
        await held.release();
      });
      const aborts = only(events, "abort");
      assert.deepEqual(aborts.map((e) => [e.reason, e.waitedMs]), [[before, 0], [during, 30]]);
    });
  });

  it("Pool.events() exhausted reports the waiters queued", async () => {
    const events = await recorded({ max: 1, maxWaiting: 1 }, async (pool) => {
      const held = await pool.acquire();
      const queued = pool.acquire();
      await assert.rejects(pool.acquire());
      await held.release();
      await (await queued).release();
    });
    assert.deepEqual(only(events, "exhausted").map((e) => e.waiting), [1]);
  });

  it("Pool.events() leak names the acquirer's function and unleaked follows the release", async () => {
    await withFakeTime(async (clock) => {
      let lease: Lease<FakeResource> | undefined;
      async function acquireAndForgetAboutIt(pool: Pool<FakeResource>) {
        lease = await pool.acquire();
      }
      const events = await recorded(
        { leakDetectionMs: 1_000, reapIntervalMs: 100 },
        async (pool) => {
          await acquireAndForgetAboutIt(pool);
          await clock.tickAsync(1_100);
          await lease!.release();
        },
      );
      const [leak] = only(events, "leak");
      assert.equal(leak.id, 1);
      assert.ok(leak.heldMs >= 1_000 && leak.heldMs <= 1_100, String(leak.heldMs));
      assert.match(leak.stack, /acquireAndForgetAboutIt/);
      const [unleaked] = only(events, "unleaked");
      assert.deepEqual([unleaked.id, unleaked.heldMs], [1, 1_100]);
      const types = events.map((e) => e.type);
      assert.equal(types.filter((t) => t === "leak").length, 1, "reported once per lease");
      assert.ok(types.indexOf("release") < types.indexOf("unleaked"));
    });
  });

  it("Pool.events() close comes last, after every destroy", async () => {
    const events = await recorded({ min: 2 }, async (pool) => {
      await pool.ready();
    });
    assert.deepEqual(events.map((e) => e.type), [
      "create",
      "create",
      "destroy",
      "destroy",
      "close",
    ]);
  });

  it("Pool.events() delivers every event to each subscriber and to onEvent", async () => {
    const seen: PoolEvent[] = [];
    const pool = new Pool(new FakeFactory(), { onEvent: (e) => seen.push(e) });
    const a = pool.events();
    const b = pool.events({ bufferSize: 16 });
    await pool.use(() => {});
    const late = pool.events(); // sees only what happens from now on
    await pool.use(() => {});
    await pool.close();
    const [fromA, fromB, fromLate] = await Promise.all([drain(a), drain(b), drain(late)]);
    assert.equal(fromA.length, 7);
    assert.deepEqual(fromA, seen);
    assert.deepEqual(fromB, seen);
    assert.deepEqual(fromLate.map((e) => e.type), ["acquire", "release", "destroy", "close"]);
  });

  it("Pool.events() overflow drops the oldest events and the next one says how many", async () => {
    await withPool({}, async (pool) => {
      await pool.use(() => {});
      const small = pool.events({ bufferSize: 2 });
      const big = pool.events();
      for (let i = 0; i < 3; i++) await pool.use(() => {}); // 6 events
      const first = await small.next();
      assert.equal(first.value?.type, "acquire");
      assert.equal(first.value?.dropped, 4);
      const second = await small.next();
      assert.equal(second.value?.type, "release");
      assert.equal(second.value?.dropped, undefined, "only the first event after a gap");
      // Another subscriber's copy of the same event is untouched.
      const all = [];
      for (let i = 0; i < 6; i++) all.push((await big.next()).value!);
      assert.ok(all.every((e) => e.dropped === undefined));
      // Nothing more is counted as dropped once the reader keeps up.
      const waiting = small.next();
      await pool.use(() => {});
      assert.equal((await waiting).value?.dropped, undefined);
      await small.return?.();
      await big.return?.();
    });
  });

  it("Pool.events() hands each of several pending next() calls its own event", async () => {
    await withPool({}, async (pool) => {
      const events = pool.events();
      const reads = [ev(events), ev(events), ev(events)];
      await pool.use(() => {});
      const [create, acquire, release] = await Promise.all(reads);
      assert.equal(typeof create === "object" && create.type, "create");
      assert.equal(typeof acquire === "object" && acquire.type, "acquire");
      assert.equal(typeof release === "object" && release.type, "release");
      await events.return?.();
    });
  });

  it("Pool.events() break ends the iteration and unsubscribes", async () => {
    const hub = new EventHub(undefined);
    assert.equal(hub.active, false, "nobody listens yet");
    const events = hub.subscribe();
    assert.equal(hub.subscribers, 1);
    assert.equal(hub.active, true);
    hub.emit({ type: "close", time: 1 });
    hub.emit({ type: "close", time: 2 });
    for await (const event of events) {
      assert.equal(event.time, 1);
      break;
    }
    assert.equal(hub.subscribers, 0);
    assert.equal(hub.active, false);
    hub.emit({ type: "close", time: 3 });
    assert.equal(await ev(events), "done", "buffered and later events are not delivered");
  });

  it("Pool.events() return() resolves a pending read as done and unsubscribes", async () => {
    const hub = new EventHub(undefined);
    const events = hub.subscribe();
    const pending = ev(events);
    await assertPending(pending);
    assert.deepEqual(await events.return?.(), { value: undefined, done: true });
    assert.equal(await pending, "done");
    assert.equal(hub.subscribers, 0);
  });

  it("Pool.events() signal ends the iteration at once and detaches its listener", async () => {
    const hub = new EventHub(undefined);
    const { controller, signal, listeners } = countingSignal();
    const events = hub.subscribe({ signal });
    assert.equal(listeners(), 1);
    hub.emit({ type: "close", time: 1 }); // buffered, then discarded by the abort
    const second = hub.subscribe({ signal });
    const pending = ev(second);
    controller.abort();
    assert.equal(await pending, "done");
    assert.equal(await ev(events), "done");
    assert.equal(hub.subscribers, 0);
    assert.equal(listeners(), 0);
  });

  it("Pool.events() with an already aborted signal is ended from the start", async () => {
    await withPool({}, async (pool) => {
      const events = pool.events({ signal: AbortSignal.abort() });
      await pool.use(() => {});
      assert.equal(await ev(events), "done");
    });
  });

  it("Pool.events() close() delivers what is buffered, then ends every subscriber", async () => {
    const pool = new Pool(new FakeFactory());
    const events = pool.events();
    const pending = ev(events);
    await pool.use(() => {});
    await pool.close();
    assert.equal(typeof (await pending) === "object", true);
    const rest = await drain(events);
    assert.deepEqual(rest.map((e) => e.type), ["acquire", "release", "destroy", "close"]);
    assert.equal(await ev(events), "done");
    assert.equal(await ev(pool.events()), "done", "events() after close() is ended at once");
  });

  it("Pool.events() ends a read waiting when close() completes", async () => {
    const pool = new Pool(new FakeFactory());
    const events = pool.events();
    await pool.close();
    const [close] = await drain(events);
    assert.equal(close.type, "close");
  });

  it("Pool.events() survives an onEvent callback that throws", async () => {
    let calls = 0;
    const pool = new Pool(new FakeFactory(), {
      max: 1,
      onEvent: () => {
        calls++;
        throw new Error("observer bug");
      },
    });
    const events = pool.events();
    const held = await pool.acquire();
    const queued = pool.acquire();
    await held.release();
    await (await queued).release();
    assert.equal(await pool.use((r) => r.id), 1);
    const s = pool.stats();
    assert.deepEqual([s.active, s.idle, s.acquired, s.released], [0, 1, 3, 3]);
    await pool.close();
    const delivered = await drain(events);
    assert.equal(delivered.length, calls);
    assert.equal(delivered.at(-1)!.type, "close");
  });

  it("Pool.events() survives an async onEvent callback that rejects, unhandled nowhere", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      let calls = 0;
      const pool = new Pool(new FakeFactory(), {
        max: 1,
        onEvent: async () => {
          calls++;
          await Promise.resolve();
          throw new Error("async observer bug");
        },
      });
      assert.equal(await pool.use((r) => r.id), 1);
      await pool.close();
      await new Promise((resolve) => setTimeout(resolve, 20)); // unhandled rejections surface
      assert.ok(calls >= 4, `onEvent called ${calls} times`);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("Pool.events() rejects a malformed bufferSize, signal or options", async () => {
    await withPool({}, async (pool) => {
      for (const bufferSize of [0, -1, 1.5, NaN, Infinity]) {
        assert.throws(() => pool.events({ bufferSize }), RangeError, String(bufferSize));
      }
      assert.throws(() => pool.events({ bufferSize: "8" as unknown as number }), TypeError);
      assert.throws(() => pool.events({ bufferSize: null as unknown as number }), {
        name: "TypeError",
        message: "events() options.bufferSize must be a number, received null",
      });
      assert.throws(() => pool.events({ signal: {} as AbortSignal }), TypeError);
      assert.throws(() => pool.events(null as unknown as undefined), TypeError);
      await flush();
    });
  });
});
