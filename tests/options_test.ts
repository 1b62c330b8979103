import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AcquireTimeoutError, type Factory, Pool, type PoolOptions } from "../mod.ts";
import { DEFAULTS } from "../src/options.ts";
import {
  closeUnderFakeTime,
  FakeFactory,
  flush,
  withClockPool,
  withFakeTime,
  withPool,
} from "./_helpers.ts";

type ErrorClass = typeof RangeError | typeof TypeError;

/** How a bad value is shown in the error message. */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value !== null && typeof value === "object") return "an object";
  return String(value);
}

/** Constructs a pool with `options` (typed loosely: these tests pass malformed values on purpose). */
function construct(options: unknown, ...factory: unknown[]): Pool<unknown> {
  const f = factory.length === 0 ? new FakeFactory() : factory[0];
  return new Pool(f as Factory<unknown>, options as PoolOptions);
}

/** Asserts that constructing with `{ [key]: value }` throws `type` naming the option and value. */
function assertRejectsOption(key: string, value: unknown, type: ErrorClass): void {
  assert.throws(
    () => construct({ [key]: value }),
    (error: unknown) => {
      assert.ok(error instanceof type, `${key}: ${shown(value)} threw ${String(error)}`);
      assert.match(error.message, new RegExp(`\\b${key}\\b`), `names ${key}`);
      assert.ok(
        error.message.includes(shown(value)),
        `"${error.message}" shows the value ${shown(value)}`,
      );
      return true;
    },
  );
}

/** Asserts that constructing with `{ ...base, [key]: value }` works, and closes the pool. */
async function assertAcceptsOption(key: string, value: unknown, base = {}): Promise<void> {
  let pool: Pool<unknown> | undefined;
  try {
    pool = construct({ ...base, [key]: value });
  } catch (error) {
    assert.fail(`${key}: ${shown(value)} was refused: ${String(error)}`);
  }
  await pool.close({ timeoutMs: 0 });
}

const WRONG_TYPE: unknown[] = ["1", null, true, {}, 1n];

const COUNTS: { key: string; bad: unknown[]; good: unknown[] }[] = [
  { key: "min", bad: [-1, 1.5, Infinity, -Infinity], good: [0, 3, undefined] },
  { key: "max", bad: [0, -1, 1.5, Infinity], good: [1, 100, undefined] },
  { key: "maxWaiting", bad: [-1, 1.5, -Infinity], good: [0, 7, Infinity, undefined] },
  { key: "createConcurrency", bad: [0, -1, 1.5, -Infinity], good: [1, 4, Infinity, undefined] },
  { key: "maxUses", bad: [0, -1, 1.5, -Infinity], good: [1, 50, Infinity, undefined] },
];

const DURATIONS = [
  "acquireTimeoutMs",
  "createTimeoutMs",
  "destroyTimeoutMs",
  "validateTimeoutMs",
  "resetTimeoutMs",
  "validateBypassMs",
  "maxLifetimeMs",
  "idleTimeoutMs",
  "keepaliveMs",
  "leakDetectionMs",
  "closeTimeoutMs",
];

describe("PoolOptions validation", () => {
  for (const { key, bad, good } of COUNTS) {
    it(`new Pool() refuses ${key} out of range with a RangeError naming it and the value`, () => {
      for (const value of [...bad, NaN]) assertRejectsOption(key, value, RangeError);
    });
    it(`new Pool() refuses ${key} of the wrong type with a TypeError naming it and the value`, () => {
      for (const value of WRONG_TYPE) assertRejectsOption(key, value, TypeError);
    });
    it(`new Pool() accepts valid ${key} values`, async () => {
      for (const value of good) await assertAcceptsOption(key, value);
    });
  }

  for (const key of DURATIONS) {
    it(`new Pool() refuses a negative, NaN or non-number ${key}`, () => {
      for (const value of [-1, -0.5, -Infinity, NaN]) assertRejectsOption(key, value, RangeError);
      for (const value of WRONG_TYPE) assertRejectsOption(key, value, TypeError);
    });
    it(`new Pool() accepts ${key} of 0, a fraction, Infinity or undefined`, async () => {
      // A keepalive must be shorter than the lifetime (checked below): turn lifetimes off here.
      const base = key === "keepaliveMs" ? { maxLifetimeMs: 0 } : {};
      for (const value of [0, 1.5, 60_000, Infinity, undefined]) {
        await assertAcceptsOption(key, value, base);
      }
    });
  }

  it("new Pool() refuses -1, NaN and non-numbers for every numeric option in DEFAULTS", () => {
    const numeric = Object.entries(DEFAULTS).filter(([, v]) => typeof v === "number");
    assert.ok(numeric.length >= 17, "the sweep sees every numeric option");
    for (const [key] of numeric) {
      for (const value of [-1, NaN]) assertRejectsOption(key, value, RangeError);
      for (const value of ["1", null]) assertRejectsOption(key, value, TypeError);
    }
    // Every numeric option is also swept in detail above or below.
    const detailed = [
      ...COUNTS.map((c) => c.key),
      ...DURATIONS,
      "reapIntervalMs",
      "lifetimeJitter",
    ];
    for (const [key] of numeric) assert.ok(detailed.includes(key), `${key} has a detailed sweep`);
  });

  it("new Pool() refuses a reapIntervalMs below 1 ms or infinite", async () => {
    for (const value of [0, 0.5, -1, Infinity, NaN]) {
      assertRejectsOption("reapIntervalMs", value, RangeError);
    }
    for (const value of WRONG_TYPE) assertRejectsOption("reapIntervalMs", value, TypeError);
    for (const value of [1, 250.5, undefined]) await assertAcceptsOption("reapIntervalMs", value);
  });

  it("new Pool() refuses a lifetimeJitter outside [0, 1)", async () => {
    for (const value of [-0.1, 1, 1.5, NaN, Infinity]) {
      assertRejectsOption("lifetimeJitter", value, RangeError);
    }
    for (const value of WRONG_TYPE) assertRejectsOption("lifetimeJitter", value, TypeError);
    for (const value of [0, 0.5, 0.999]) await assertAcceptsOption("lifetimeJitter", value);
  });

  it("new Pool() refuses an idleOrder other than lifo or fifo with a TypeError", async () => {
    for (const value of ["LIFO", "random", "", 1, null]) {
      assertRejectsOption("idleOrder", value, TypeError);
    }
    for (const value of ["lifo", "fifo", undefined]) await assertAcceptsOption("idleOrder", value);
  });

  it("new Pool() refuses a non-boolean validateOnAcquire with a TypeError", async () => {
    for (const value of ["yes", 1, null]) {
      assertRejectsOption("validateOnAcquire", value, TypeError);
    }
    for (const value of [true, false, undefined]) {
      await assertAcceptsOption("validateOnAcquire", value);
    }
  });

  it("new Pool() refuses a non-function onEvent with a TypeError", async () => {
    for (const value of ["log", 1, {}, null]) {
      assert.throws(() => construct({ onEvent: value }), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /onEvent must be a function/);
        return true;
      });
    }
    await assertAcceptsOption("onEvent", () => {});
  });

  it("new Pool() refuses min above max with a RangeError naming both", () => {
    assert.throws(() => construct({ min: 3, max: 2 }), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /min \(3\) must not exceed max \(2\)/);
      return true;
    });
    // The default max (10) counts too.
    assert.throws(() => construct({ min: 11 }), /min \(11\) must not exceed max \(10\)/);
  });

  it("new Pool() refuses a keepaliveMs not below maxLifetimeMs", async () => {
    assert.throws(
      () => construct({ keepaliveMs: 1_000, maxLifetimeMs: 1_000 }),
      (error: unknown) => {
        assert.ok(error instanceof RangeError);
        assert.match(error.message, /keepaliveMs \(1000\).*maxLifetimeMs \(1000\)/);
        return true;
      },
    );
    assert.throws(() => construct({ keepaliveMs: 1_800_000 }), /maxLifetimeMs \(1800000\)/);
    // Shorter than the lifetime, or with lifetimes off, any keepalive goes.
    await assertAcceptsOption("keepaliveMs", 1_799_999);
    await assertAcceptsOption("keepaliveMs", 10_000_000, { maxLifetimeMs: 0 });
    await assertAcceptsOption("keepaliveMs", 10_000_000, { maxLifetimeMs: Infinity });
  });

  it("new Pool() refuses an unknown option key with a TypeError naming it", () => {
    for (const key of ["maxSize", "timeout", "acquireTimeout", "MIN"]) {
      assert.throws(() => construct({ [key]: 1 }), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.ok(error.message.includes(JSON.stringify(key)), error.message);
        return true;
      });
    }
  });

  it("new Pool() refuses options that are not an object with a TypeError", () => {
    for (const value of [5, "fast", null, true]) {
      assert.throws(() => construct(value), (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /options must be an object/);
        return true;
      });
    }
  });

  it("new Pool() refuses a factory without a create() function with a TypeError", () => {
    for (const factory of [undefined, null, 1, "db", {}, { create: 1 }, { create: "make" }]) {
      assert.throws(() => construct({}, factory), (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /factory/);
        return true;
      });
    }
  });

  it("new Pool() refuses non-function factory hooks with a TypeError naming the hook", () => {
    for (const hook of ["destroy", "validate", "reset", "isBroken"]) {
      for (const value of [1, "x", {}, null]) {
        assert.throws(
          () => construct({}, { create: () => ({}), [hook]: value }),
          (error: unknown) => {
            assert.ok(error instanceof TypeError, String(error));
            assert.match(error.message, new RegExp(`factory\\.${hook} must be a function`));
            return true;
          },
        );
      }
    }
  });

  it("new Pool() accepts a factory with only create(), sync or async", async () => {
    for (const create of [() => ({}), () => Promise.resolve({})]) {
      const pool = new Pool({ create });
      const lease = await pool.acquire();
      await lease.release();
      await pool.close();
    }
  });
});

describe("PoolOptions defaults", () => {
  it("new Pool() without options defaults to max 10 and min 0", async () => {
    const pool = new Pool(new FakeFactory());
    try {
      const s = pool.stats();
      assert.deepEqual([s.min, s.max], [0, 10]);
      assert.deepEqual([s.min, s.max], [DEFAULTS.min, DEFAULTS.max]);
    } finally {
      await pool.close();
    }
  });

  it("new Pool() treats an option set to undefined as missing", async () => {
    const pool = construct({ max: undefined, min: undefined, idleOrder: undefined });
    try {
      assert.equal(pool.stats().max, 10);
    } finally {
      await pool.close();
    }
  });

  it("Pool.acquire() waits acquireTimeoutMs (30 s) by default", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { max: 1 }, async (pool) => {
        const held = await pool.acquire();
        const waiting = pool.acquire();
        const rejected = assert.rejects(waiting, (error: unknown) => {
          assert.ok(error instanceof AcquireTimeoutError);
          assert.equal(error.timeoutMs, 30_000);
          return true;
        });
        await clock.tickAsync(29_999);
        assert.equal(pool.stats().waiting, 1);
        await clock.tickAsync(1);
        await rejected;
        await held.release();
      });
    });
  });

  it("Pool validates on acquire by default only when the factory has validate()", async () => {
    await withFakeTime(async (clock) => {
      for (const withValidate of [true, false]) {
        const factory = new FakeFactory();
        let validations = 0;
        const hooks: Factory<unknown> = { create: (signal) => factory.create(signal) };
        if (withValidate) {
          hooks.validate = () => {
            validations++;
            return true;
          };
        }
        const pool = new Pool(hooks);
        try {
          await (await pool.acquire()).release();
          await clock.tickAsync(DEFAULTS.validateBypassMs);
          await (await pool.acquire()).release();
          assert.equal(validations, withValidate ? 1 : 0);
        } finally {
          await closeUnderFakeTime(pool, clock);
        }
      }
    });
  });

  describe("factory hooks changed after the pool was made", () => {
    type Conn = { id: number };
    function plainHooks(): Factory<Conn> & { made: number } {
      const hooks = { made: 0, create: () => ({ id: ++hooks.made }) } as Factory<Conn> & {
        made: number;
      };
      return hooks;
    }

    for (const listened of [false, true]) {
      const how = listened ? "with a listener" : "with nobody listening";
      it(`Pool never calls a reset or isAlive hook added later (${how})`, async () => {
        const hooks = plainHooks();
        const pool = new Pool(hooks, listened ? { onEvent: () => {} } : {});
        try {
          const calls: string[] = [];
          hooks.reset = () => void calls.push("reset");
          hooks.isAlive = () => (calls.push("isAlive"), false);
          await (await pool.acquire()).release();
          await (await pool.acquire()).release();
          assert.deepEqual(calls, []);
          assert.equal(hooks.made, 1, "reused, not judged dead");
        } finally {
          await pool.close();
        }
      });

      it(`Pool calls a reset or isAlive hook replaced later, and skips one removed (${how})`, async () => {
        const calls: string[] = [];
        const hooks = plainHooks();
        hooks.reset = () => void calls.push("old reset");
        hooks.isAlive = () => (calls.push("old isAlive"), true);
        hooks.validate = () => (calls.push("old validate"), true);
        const pool = new Pool(hooks, {
          validateBypassMs: 0,
          ...(listened ? { onEvent: () => {} } : {}),
        });
        try {
          await (await pool.acquire()).release(); // created: reset only
          hooks.reset = () => void calls.push("new reset");
          hooks.isAlive = () => (calls.push("new isAlive"), true);
          hooks.validate = () => (calls.push("new validate"), true);
          await (await pool.acquire()).release();
          delete hooks.reset;
          delete hooks.isAlive;
          delete hooks.validate;
          await (await pool.acquire()).release();
          assert.deepEqual(calls, ["old reset", "new isAlive", "new validate", "new reset"]);
          assert.equal(hooks.made, 1, "one resource throughout");
          assert.equal(pool.stats().destroyed, 0);
        } finally {
          await pool.close();
        }
      });
    }
  });

  it("Pool skips validation when validateOnAcquire is false even with validate()", async () => {
    await withFakeTime(async (clock) => {
      await withClockPool(clock, { validateOnAcquire: false }, async (pool, factory) => {
        await (await pool.acquire()).release();
        await clock.tickAsync(10_000);
        await (await pool.acquire()).release();
        assert.equal(factory.validated.length, 0);
      });
    });
  });
});

describe("AcquireOptions validation", () => {
  it("Pool.acquire() rejects with a RangeError for a negative or NaN timeoutMs", async () => {
    await withPool({}, async (pool) => {
      for (const timeoutMs of [-1, -Infinity, NaN]) {
        await assert.rejects(pool.acquire({ timeoutMs }), (error: unknown) => {
          assert.ok(error instanceof RangeError, String(error));
          assert.match(error.message, /acquire\(\) options\.timeoutMs/);
          return true;
        });
      }
      assert.equal(pool.stats().created, 0);
    });
  });

  it("Pool.acquire() rejects with a TypeError for options that are not an object", async () => {
    await withPool({}, async (pool) => {
      const acquire = pool.acquire as (options: unknown) => Promise<unknown>;
      for (const options of ["x", 5, null, true]) {
        // A rejected promise, never a synchronous throw.
        let result: Promise<unknown> | undefined;
        assert.doesNotThrow(() => {
          result = acquire.call(pool, options);
        });
        await assert.rejects(result!, (error: unknown) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, /acquire\(\) options must be an object/);
          return true;
        });
      }
      assert.equal(pool.stats().created, 0);
    });
  });

  it("Pool.acquire() rejects with a TypeError for a timeoutMs or signal of the wrong type", async () => {
    await withPool({}, async (pool) => {
      const acquire = pool.acquire as (options: unknown) => Promise<unknown>;
      await assert.rejects(acquire.call(pool, { timeoutMs: "100" }), TypeError);
      await assert.rejects(
        acquire.call(pool, { signal: {} }),
        /options\.signal must be an AbortSignal/,
      );
      await assert.rejects(acquire.call(pool, { signal: "abort" }), TypeError);
      assert.equal(pool.stats().created, 0);
    });
  });

  it("Pool.acquire() accepts timeoutMs 0 and Infinity", async () => {
    await withPool({}, async (pool) => {
      await (await pool.acquire({ timeoutMs: Infinity })).release();
      await (await pool.acquire({ timeoutMs: 0 })).release();
    });
  });

  it("Pool.use() rejects with a RangeError for a bad timeoutMs without calling its callback", async () => {
    await withPool({}, async (pool) => {
      let called = false;
      await assert.rejects(
        pool.use(() => (called = true), { timeoutMs: -5 }),
        RangeError,
      );
      assert.equal(called, false);
    });
  });

  it("Pool.ready() rejects with a RangeError or TypeError for bad options", async () => {
    await withPool({ min: 1 }, async (pool) => {
      await assert.rejects(pool.ready({ timeoutMs: -1 }), RangeError);
      const ready = pool.ready as (options: unknown) => Promise<void>;
      await assert.rejects(ready.call(pool, "soon"), TypeError);
      await pool.ready();
    });
  });

  it("Pool.close() rejects with a RangeError or TypeError for bad options and stays open", async () => {
    const pool = new Pool(new FakeFactory());
    await assert.rejects(pool.close({ timeoutMs: -1 }), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.match(error.message, /close\(\) options\.timeoutMs/);
      return true;
    });
    const close = pool.close as (options: unknown) => Promise<void>;
    await assert.rejects(close.call(pool, 3), TypeError);
    assert.equal(pool.closed, false);
    await (await pool.acquire()).release();
    await pool.close();
    await flush();
    assert.equal(pool.closed, true);
  });
});
