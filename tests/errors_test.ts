import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AcquireTimeoutError,
  Pool,
  PoolClosedError,
  PoolError,
  type PoolEvent,
  PoolExhaustedError,
  type PoolStats,
} from "../mod.ts";
import {
  closeUnderFakeTime,
  FakeFactory,
  rejection,
  withClockPool,
  withFakeTime,
  withPool,
} from "./_helpers.ts";

/** What every pool error shares: class, literal name, a stats snapshot, a well-formed message. */
function assertPoolError<E extends PoolError>(
  error: unknown,
  type: new (...args: never[]) => E,
  name: string,
): E {
  assert.ok(error instanceof type, `expected ${name}, got ${String(error)}`);
  assert.ok(error instanceof PoolError);
  assert.ok(error instanceof Error);
  assert.equal(error.name, name);
  assert.equal(error.constructor.name, name);
  assert.ok(String(error).startsWith(`${name}: `), String(error));
  assert.ok(error.stats !== undefined, "carries a stats snapshot");
  assert.equal(typeof error.stats.max, "number");
  assert.ok(!error.message.endsWith("."), "no trailing period");
  assert.ok(!error.message.includes("\n"), "one line");
  return error;
}

function assertStats(stats: PoolStats | undefined, expected: Partial<PoolStats>): void {
  assert.ok(stats);
  const picked = Object.fromEntries(
    Object.keys(expected).map((k) => [k, stats[k as keyof PoolStats]]),
  );
  assert.deepEqual(picked, expected);
}

describe("AcquireTimeoutError", () => {
  it("AcquireTimeoutError says how long it waited and the pool's state", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const held = await pool.acquire();
        const waiting = rejection(pool.acquire({ timeoutMs: 50 }));
        await clock.tickAsync(50);
        const error = assertPoolError(await waiting, AcquireTimeoutError, "AcquireTimeoutError");
        assert.match(
          error.message,
          /timed out after 50 ms \(1 in use, 0 idle, 1 waiting, 0 creating, max 1\)$/,
        );
        assert.equal(error.timeoutMs, 50);
        // The snapshot is taken while the waiter still counts, as the caller saw the queue.
        assertStats(error.stats, { active: 1, idle: 0, waiting: 1, max: 1 });
        assert.equal(error.cause, undefined, "no create failed, so no cause");
        assert.equal("cause" in error, false);
        await held.release();
      });
    });
  });

  it("AcquireTimeoutError counts resources being validated in the state it reports", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      await withClockPool(clock, { max: 1, validateBypassMs: 0 }, async (pool) => {
        await (await pool.acquire()).release();
        factory.validatePlan = ["hang"]; // the idle one is stuck in validation
        const waiting = rejection(pool.acquire({ timeoutMs: 50 }));
        await clock.tickAsync(50);
        const error = assertPoolError(await waiting, AcquireTimeoutError, "AcquireTimeoutError");
        assert.match(error.message, /\(0 in use, 1 being checked, 0 idle, 1 waiting, 0 creating/);
      }, factory);
    });
  });

  it("AcquireTimeoutError carries the last create error as its cause and names its kind, never its text", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      let calls = 0;
      factory.create = () => {
        calls++;
        const error = new Error(`connect postgres://app:hunter2@db failed #${calls}`);
        return Promise.reject(Object.assign(error, { code: "ECONNREFUSED" }));
      };
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const waiting = rejection(pool.acquire({ timeoutMs: 1_000 }));
        await clock.tickAsync(1_000);
        const error = assertPoolError(await waiting, AcquireTimeoutError, "AcquireTimeoutError");
        assert.ok(calls > 1, "creation was retried");
        assert.ok(error.cause instanceof Error);
        assert.equal(error.cause.message, `connect postgres://app:hunter2@db failed #${calls}`);
        assert.match(
          error.message,
          /timed out after 1000 ms \(.*\); last create error: Error ECONNREFUSED$/,
        );
        assert.ok(!error.message.includes("hunter2"), "a driver's message may hold a secret");
      }, factory);
    });
  });

  it("AcquireTimeoutError names the type of a non-Error create failure", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.create = () => Promise.reject("ECONNRESET");
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const waiting = rejection(pool.acquire({ timeoutMs: 10 }));
        await clock.tickAsync(10);
        const error = assertPoolError(await waiting, AcquireTimeoutError, "AcquireTimeoutError");
        assert.equal(error.cause, "ECONNRESET");
        assert.match(error.message, /; last create error: a string$/);
      }, factory);
    });
  });

  it("AcquireTimeoutError never shows the resource's value", async () => {
    await withFakeTime(async (clock) => {
      const secret = "postgres://admin:hunter2@db";
      const pool = new Pool({ create: () => ({ url: secret }) }, { max: 1 });
      try {
        const held = await pool.acquire();
        const waiting = rejection(pool.acquire({ timeoutMs: 5 }));
        await clock.tickAsync(5);
        const error = await waiting;
        assert.ok(error instanceof AcquireTimeoutError);
        assert.ok(!error.message.includes("hunter2"));
        assert.ok(!JSON.stringify(error.stats).includes("hunter2"));
        await held.release();
      } finally {
        await closeUnderFakeTime(pool, clock);
      }
    });
  });
});

describe("PoolExhaustedError", () => {
  it("PoolExhaustedError carries maxWaiting and the state when the queue is full", async () => {
    await withPool({ max: 1, maxWaiting: 1 }, async (pool) => {
      const held = await pool.acquire();
      const queued = pool.acquire({ timeoutMs: Infinity });
      const error = assertPoolError(
        await rejection(pool.acquire()),
        PoolExhaustedError,
        "PoolExhaustedError",
      );
      assert.equal(error.maxWaiting, 1);
      assert.match(
        error.message,
        /^cannot acquire: the wait queue is full \(maxWaiting 1; 1 in use, 0 idle, 1 waiting, 0 creating, max 1\)$/,
      );
      assertStats(error.stats, { active: 1, waiting: 1 });
      assert.equal(error.cause, undefined);
      await held.release();
      await (await queued).release();
    });
  });
});

describe("PoolClosedError", () => {
  it("PoolClosedError names the refused operation and the state", async () => {
    const pool = new Pool(new FakeFactory(), { max: 2 });
    await (await pool.acquire()).release();
    await pool.close();
    const error = assertPoolError(
      await rejection(pool.acquire()),
      PoolClosedError,
      "PoolClosedError",
    );
    assert.match(
      error.message,
      /^cannot acquire: the pool is closed \(0 in use, 0 idle, 0 waiting, 0 creating, max 2\)$/,
    );
    const ready = assertPoolError(
      await rejection(pool.ready()),
      PoolClosedError,
      "PoolClosedError",
    );
    assert.match(ready.message, /^cannot get ready: the pool is closed/);
  });

  it("PoolClosedError rejects a waiter queued when close() was called", async () => {
    await withPool({ max: 1 }, async (pool) => {
      const held = await pool.acquire();
      const waiting = rejection(pool.acquire({ timeoutMs: Infinity }));
      const closing = pool.close({ timeoutMs: 0 });
      const error = assertPoolError(await waiting, PoolClosedError, "PoolClosedError");
      assert.match(error.message, /cannot acquire: the pool is closed \(1 in use/);
      await closing;
      assert.equal(held.released, true);
    });
  });
});

describe("PoolError", () => {
  it("PoolError is what lease.value throws after the lease ended, naming the resource", async () => {
    await withPool({}, async (pool) => {
      const lease = await pool.acquire();
      const id = lease.info.id;
      await lease.release();
      assert.throws(() => lease.value, (error: unknown) => {
        assert.ok(error instanceof PoolError);
        assert.equal(error.name, "PoolError");
        assert.match(error.message, new RegExp(`lease on resource ${id} has ended$`));
        return true;
      });
    });
  });

  it("PoolError from ready() says what is missing, with the create error as cause", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      const failure = new Error("password authentication failed for user app");
      factory.create = () => Promise.reject(failure);
      await withClockPool(clock, { min: 2 }, async (pool) => {
        const ready = rejection(pool.ready({ timeoutMs: 100 }));
        await clock.tickAsync(100);
        const error = assertPoolError(await ready, PoolError, "PoolError");
        assert.equal(error.cause, failure);
        assert.match(
          error.message,
          /^not ready after 100 ms: 0 of min 2 resources exist; last create error: Error$/,
        );
        assert.ok(!error.message.includes("password"));
      }, factory);
    });
  });

  it("PoolError of a create timeout says how long create() took, as an acquire's cause", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan.push("hang");
      await withClockPool(clock, { max: 1, createTimeoutMs: 20 }, async (pool) => {
        const waiting = rejection(pool.acquire({ timeoutMs: 30 }));
        await clock.tickAsync(30);
        const error = assertPoolError(await waiting, AcquireTimeoutError, "AcquireTimeoutError");
        const cause = assertPoolError(error.cause, PoolError, "PoolError");
        assert.match(
          cause.message,
          /^cannot create a resource: factory\.create\(\) took longer than 20 ms \(0 in use, 0 idle, 1 waiting, 1 creating, max 1\)$/,
        );
        assertStats(cause.stats, { waiting: 1, creating: 1, total: 0 });
      }, factory);
    });
  });

  it("PoolError of a validate timeout says which hook, how long, and the pool's state", async () => {
    await withFakeTime(async (clock) => {
      const events: PoolEvent[] = [];
      await withClockPool(clock, {
        max: 2,
        validateTimeoutMs: 200,
        onEvent: (e) => void events.push(e),
      }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(1_000); // past validateBypassMs
        factory.validatePlan.push("hang");
        const acquiring = pool.acquire(); // waits out the hung validation, then gets a new one
        await clock.tickAsync(200);
        const lease = await acquiring;
        const failed = events.find((e) => e.type === "validate-fail");
        assert.ok(failed?.type === "validate-fail");
        const error = assertPoolError(failed.error, PoolError, "PoolError");
        assert.match(
          error.message,
          /^cannot validate a resource: factory\.validate\(\) took longer than 200 ms \(0 in use, 1 being checked, 0 idle, 1 waiting, 0 creating, max 2\)$/,
        );
        assertStats(error.stats, { validating: 1, waiting: 1 });
        await lease.release();
      });
    });
  });

  it("PoolError can be made directly, with or without a cause", () => {
    const plain = new PoolError("something failed");
    assert.equal(plain.name, "PoolError");
    assert.equal(plain.stats, undefined);
    assert.equal("cause" in plain, false);
    const root = new Error("root");
    const wrapped = new PoolError("wrapped", { cause: root });
    assert.equal(wrapped.cause, root);
  });
});
