/**
 * Bad input, table-driven: every option with wrong types and out-of-range values, wrong factory
 * shapes, wrong arguments to every method, factories and hooks that misbehave (return nothing,
 * reject, throw, never settle), leases misused (released twice, after close, methods called on
 * foreign objects) and user callbacks that throw.
 *
 * Each case checks that the error is the documented class with a message naming the option or
 * operation and the value, and that the pool is left consistent: the accounting invariant
 * holds, no timer is left once it is closed, and (unless the case closed it) a final
 * acquire/release still works. `BAD_INPUT_CASES` is the number of cases.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AcquireTimeoutError,
  type Factory,
  Lease,
  Pool,
  PoolClosedError,
  PoolError,
  type PoolEvent,
  type PoolOptions,
} from "../mod.ts";
import {
  assertInvariant,
  closeUnderFakeTime,
  FakeFactory,
  type FakeResource,
  type fakeTime,
  isPending,
  withFakeTime,
} from "./_helpers.ts";

type Clock = ReturnType<typeof fakeTime>;
type ErrorClass = new (...args: never[]) => Error;

// ---------------------------------------------------------------- the harness

/** What a pool case gets. */
interface Ctx {
  pool: Pool<FakeResource>;
  factory: FakeFactory;
  clock: Clock;
  events: PoolEvent[];
}

interface PoolCase {
  name: string;
  options?: PoolOptions;
  run(t: Ctx): Promise<void> | void;
}

/** Describes `value` the way the library's messages do (see `show()` in src/options.ts). */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (value !== null && typeof value === "object") {
    return Array.isArray(value) ? "an array" : "an object";
  }
  return String(value);
}

/** A short label for a test name. */
function label(value: unknown): string {
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return String(value);
  if (Array.isArray(value)) return "[]";
  if (value !== null && typeof value === "object") return "{}";
  return shown(value);
}

/** Asserts that `error` is an `Class` whose message contains every fragment. */
function assertError(error: unknown, Class: ErrorClass, fragments: string[]): void {
  assert.ok(error instanceof Class, `expected a ${Class.name}, got ${String(error)}`);
  for (const fragment of fragments) {
    assert.ok(
      error.message.includes(fragment),
      `message ${JSON.stringify(error.message)} should name ${JSON.stringify(fragment)}`,
    );
  }
}

/** Asserts `call` throws synchronously with the given error. */
function assertThrows(call: () => unknown, Class: ErrorClass, fragments: string[]): void {
  let thrown: unknown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  assert.notEqual(thrown, undefined, "expected a synchronous throw");
  assertError(thrown, Class, fragments);
}

/** Asserts `call` returns a promise that rejects with the given error, without throwing. */
async function assertRejects(
  call: () => Promise<unknown>,
  Class: ErrorClass,
  fragments: string[],
): Promise<void> {
  let promise: Promise<unknown>;
  try {
    promise = call();
  } catch (error) {
    assert.fail(`expected a rejected promise, but it threw synchronously: ${String(error)}`);
  }
  assert.ok(promise instanceof Promise, "expected a promise");
  await promise.then(
    () => assert.fail("expected a rejection"),
    (error) => assertError(error, Class, fragments),
  );
}

/** Runs the fake clock until `promise` settles (bounded), then returns it. */
async function drive<T>(clock: Clock, promise: Promise<T>): Promise<T> {
  for (let i = 0; i < 1_000 && await isPending(promise); i++) await clock.tickAsync(50);
  return promise;
}

/** Puts a FakeFactory back to its prototype's behaviour: the case's sabotage ends. */
function heal(factory: FakeFactory): void {
  for (const hook of ["create", "destroy", "validate", "reset", "isBroken"]) {
    delete (factory as unknown as Record<string, unknown>)[hook];
  }
  factory.createPlan.length = 0;
  factory.validatePlan.length = 0;
  factory.destroyThrows = false;
  factory.resetThrows = false;
}

/** A fresh pool under fake time; after the case, consistency and a final acquire/release. */
async function runPoolCase(c: PoolCase): Promise<void> {
  await withFakeTime(async (clock) => {
    const factory = new FakeFactory();
    const events: PoolEvent[] = [];
    const pool = new Pool(factory, { ...c.options, onEvent: (e) => events.push(e) });
    try {
      await c.run({ pool, factory, clock, events });
      await clock.tickAsync(0);
      assertInvariant(pool.stats());
      heal(factory);
      if (!pool.closed) {
        const lease = await drive(clock, pool.acquire({ timeoutMs: 60_000 }));
        assert.equal(lease.value.destroyed, false, "the final lease holds a live resource");
        await drive(clock, lease.release());
        const s = pool.stats();
        assertInvariant(s);
        assert.equal(s.active, 0, "nothing leased after the final release");
      } else {
        await assert.rejects(pool.acquire(), PoolClosedError);
      }
    } finally {
      await closeUnderFakeTime(pool, clock);
    }
    const s = pool.stats();
    assertInvariant(s);
    assert.deepEqual([s.total, s.creating, s.destroying, s.waiting], [0, 0, 0, 0]);
    assert.equal(clock.countTimers(), 0, "no timer left after close");
  });
}

/** A constructor case: it throws, creates nothing and starts no timer. */
interface CtorCase {
  name: string;
  factory: unknown;
  options: unknown;
  Class: ErrorClass;
  fragments: string[];
}

type Case = PoolCase | CtorCase;

/** Stands for a fresh FakeFactory in a constructor case. */
const FAKE = Symbol("the fake factory");

function constructorCase(
  name: string,
  factory: unknown,
  options: unknown,
  Class: ErrorClass,
  fragments: string[],
): CtorCase {
  return { name, factory, options, Class, fragments };
}

async function runConstructorCase(c: CtorCase): Promise<void> {
  await withFakeTime(async (clock) => {
    const fake = new FakeFactory();
    const factory = (c.factory === FAKE ? fake : c.factory) as Factory<FakeResource>;
    assertThrows(() => new Pool(factory, c.options as PoolOptions), c.Class, c.fragments);
    await clock.tickAsync(0);
    assert.equal(fake.createCalls, 0, "nothing created");
    assert.equal(clock.countTimers(), 0, "no timer started");
  });
}

// ---------------------------------------------------------------- options

const WRONG_NUMBERS: unknown[] = ["10", "", true, null, {}, [], () => 1, 10n, Symbol("ten")];
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
const OUT_OF_RANGE: Record<string, number[]> = {
  max: [0, -1, 1.5, NaN, Infinity, -Infinity],
  min: [-1, 1.5, NaN, Infinity],
  maxWaiting: [-1, 1.5, NaN, -Infinity],
  maxUses: [0, -1, 1.5, NaN, -Infinity],
  reapIntervalMs: [0, 0.5, -1, NaN, Infinity],
  lifetimeJitter: [-0.1, 1, 1.5, NaN, Infinity, -Infinity],
  ...Object.fromEntries(DURATIONS.map((key) => [key, [-1, -0.5, NaN, -Infinity]])),
};

function optionCases(): CtorCase[] {
  const cases: CtorCase[] = [];
  for (const key of Object.keys(OUT_OF_RANGE)) {
    for (const value of WRONG_NUMBERS) {
      cases.push(
        constructorCase(`${key}: ${label(value)} → TypeError`, FAKE, { [key]: value }, TypeError, [
          key,
          typeof value === "symbol" ? String(value) : shown(value),
        ]),
      );
    }
    for (const value of OUT_OF_RANGE[key]) {
      cases.push(
        constructorCase(
          `${key}: ${label(value)} → RangeError`,
          FAKE,
          { [key]: value },
          RangeError,
          [
            key,
            String(value),
          ],
        ),
      );
    }
  }
  for (const value of [1, null, true, "LIFO", "random", {}]) {
    cases.push(
      constructorCase(
        `idleOrder: ${label(value)} → TypeError`,
        FAKE,
        { idleOrder: value },
        TypeError,
        [
          "idleOrder",
          shown(value),
        ],
      ),
    );
  }
  for (const value of ["true", 1, 0, null, {}]) {
    cases.push(
      constructorCase(
        `validateOnAcquire: ${label(value)} → TypeError`,
        FAKE,
        { validateOnAcquire: value },
        TypeError,
        ["validateOnAcquire", shown(value)],
      ),
    );
  }
  for (const value of ["log", 1, null, {}, true]) {
    cases.push(
      constructorCase(`onEvent: ${label(value)} → TypeError`, FAKE, { onEvent: value }, TypeError, [
        "onEvent",
        shown(value),
      ]),
    );
  }
  cases.push(
    constructorCase("min above max → RangeError", FAKE, { min: 3, max: 2 }, RangeError, [
      "min (3)",
      "max (2)",
    ]),
    constructorCase(
      "keepaliveMs not below maxLifetimeMs → RangeError",
      FAKE,
      { keepaliveMs: 1_000, maxLifetimeMs: 1_000 },
      RangeError,
      ["keepaliveMs (1000)", "maxLifetimeMs (1000)"],
    ),
  );
  for (const value of [null, 1, "max=1", true]) {
    cases.push(
      constructorCase(`options: ${label(value)} → TypeError`, FAKE, value, TypeError, [
        "options",
        shown(value),
      ]),
    );
  }
  for (const key of ["maxSize", "acquireTimeout", "timeout", ""]) {
    cases.push(
      constructorCase(
        `unknown option ${JSON.stringify(key)} → TypeError`,
        FAKE,
        { [key]: 1 },
        TypeError,
        [
          JSON.stringify(key),
        ],
      ),
    );
  }
  cases.push(
    constructorCase('options: [1] → TypeError (unknown option "0")', FAKE, [1], TypeError, [
      '"0"',
    ]),
  );
  return cases;
}

// ---------------------------------------------------------------- factories

function factoryCases(): CtorCase[] {
  const create = () => ({});
  const rows: [string, unknown, string[]][] = [
    ["undefined", undefined, ["factory", "undefined"]],
    ["null", null, ["factory", "null"]],
    ["a number", 1, ["factory", "1"]],
    ["a string", "pg", ["factory", '"pg"']],
    ["a bare function", create, ["factory", "a function"]],
    ["{}", {}, ["factory.create", "undefined"]],
    ["create: 1", { create: 1 }, ["factory.create", "1"]],
    ["create: a string", { create: "connect" }, ["factory.create", '"connect"']],
    ["create: null", { create: null }, ["factory.create", "null"]],
    ["destroy: 1", { create, destroy: 1 }, ["factory.destroy", "1"]],
    ["validate: a string", { create, validate: "ping" }, ["factory.validate", '"ping"']],
    ["reset: {}", { create, reset: {} }, ["factory.reset", "an object"]],
    ["isBroken: true", { create, isBroken: true }, ["factory.isBroken", "true"]],
    ["destroy: null", { create, destroy: null }, ["factory.destroy", "null"]],
  ];
  return rows.map(([name, factory, fragments]) =>
    constructorCase(`factory ${name} → TypeError`, factory, {}, TypeError, fragments)
  );
}

// ---------------------------------------------------------------- method arguments

function argumentCases(): PoolCase[] {
  const cases: PoolCase[] = [];
  const rejects = (
    name: string,
    call: (pool: Pool<FakeResource>) => Promise<unknown>,
    Class: ErrorClass,
    fragments: string[],
  ) => cases.push({ name, run: ({ pool }) => assertRejects(() => call(pool), Class, fragments) });
  const throws = (
    name: string,
    call: (pool: Pool<FakeResource>) => unknown,
    Class: ErrorClass,
    fragments: string[],
  ) => cases.push({ name, run: ({ pool }) => assertThrows(() => call(pool), Class, fragments) });
  // deno-lint-ignore no-explicit-any
  const p = (pool: Pool<FakeResource>) => pool as any;

  for (const value of [null, 1, "fast", true]) {
    rejects(`acquire(${label(value)}) rejects`, (pool) => p(pool).acquire(value), TypeError, [
      "acquire() options",
      String(value),
    ]);
  }
  for (const signal of [{}, "abort", null, 1]) {
    rejects(
      `acquire({ signal: ${label(signal)} }) rejects`,
      (pool) => p(pool).acquire({ signal }),
      TypeError,
      ["acquire() options.signal", "AbortSignal"],
    );
  }
  for (const timeoutMs of [-1, NaN, -Infinity]) {
    rejects(
      `acquire({ timeoutMs: ${timeoutMs} }) rejects`,
      (pool) => pool.acquire({ timeoutMs }),
      RangeError,
      ["acquire() options.timeoutMs", String(timeoutMs)],
    );
  }
  for (const timeoutMs of ["5", null, {}]) {
    rejects(
      `acquire({ timeoutMs: ${label(timeoutMs)} }) rejects`,
      (pool) => p(pool).acquire({ timeoutMs }),
      TypeError,
      ["acquire() options.timeoutMs", shown(timeoutMs)],
    );
  }
  for (const fn of [undefined, 1, "query", {}]) {
    rejects(`use(${label(fn)}) rejects`, (pool) => p(pool).use(fn), TypeError, [
      "use()",
      typeof fn,
    ]);
  }
  rejects(
    "use(fn, { timeoutMs: -1 }) rejects",
    (pool) => pool.use(() => 1, { timeoutMs: -1 }),
    RangeError,
    [
      "acquire() options.timeoutMs",
      "-1",
    ],
  );
  rejects("ready(null) rejects", (pool) => p(pool).ready(null), TypeError, [
    "ready() options",
    "null",
  ]);
  rejects("ready({ timeoutMs: -5 }) rejects", (pool) => pool.ready({ timeoutMs: -5 }), RangeError, [
    "ready() options.timeoutMs",
    "-5",
  ]);
  rejects("ready({ signal: 1 }) rejects", (pool) => p(pool).ready({ signal: 1 }), TypeError, [
    "ready() options.signal",
  ]);
  for (const value of [null, 1, "now"]) {
    rejects(
      `close(${label(value)}) rejects and leaves the pool open`,
      (pool) => p(pool).close(value),
      TypeError,
      [
        "close() options",
        String(value),
      ],
    );
  }
  rejects(
    "close({ timeoutMs: -1 }) rejects and leaves the pool open",
    (pool) => pool.close({ timeoutMs: -1 }),
    RangeError,
    [
      "close() options.timeoutMs",
      "-1",
    ],
  );
  rejects(
    'close({ timeoutMs: "1" }) rejects and leaves the pool open',
    (pool) => p(pool).close({ timeoutMs: "1" }),
    TypeError,
    ["close() options.timeoutMs", '"1"'],
  );
  for (const predicate of [1, "all", null, {}]) {
    rejects(`evict(${label(predicate)}) rejects`, (pool) => p(pool).evict(predicate), TypeError, [
      "evict()",
      typeof predicate,
    ]);
  }
  throws("events(null) throws", (pool) => p(pool).events(null), TypeError, [
    "events() options",
    "null",
  ]);
  for (const bufferSize of [0, -1, 1.5]) {
    throws(
      `events({ bufferSize: ${bufferSize} }) throws`,
      (pool) => pool.events({ bufferSize }),
      RangeError,
      ["events() options.bufferSize", String(bufferSize)],
    );
  }
  throws(
    'events({ bufferSize: "8" }) throws',
    (pool) => p(pool).events({ bufferSize: "8" }),
    TypeError,
    [
      "events() options.bufferSize",
    ],
  );
  throws("events({ signal: {} }) throws", (pool) => p(pool).events({ signal: {} }), TypeError, [
    "events() options.signal",
  ]);
  throws("map(items, undefined) throws", (pool) => p(pool).map([1], undefined), TypeError, [
    "map()",
    "undefined",
  ]);
  for (const source of [null, undefined, 5, {}]) {
    throws(`map(${label(source)}, fn) throws`, (pool) => p(pool).map(source, () => 1), TypeError, [
      "map()",
      source === null ? "null" : typeof source,
    ]);
  }
  throws("map(items, fn, null) throws", (pool) => p(pool).map([1], () => 1, null), TypeError, [
    "map() options",
    "null",
  ]);
  for (const concurrency of [0, -1, 1.5, NaN]) {
    throws(
      `map(items, fn, { concurrency: ${concurrency} }) throws`,
      (pool) => pool.map([1], () => 1, { concurrency }),
      RangeError,
      ["map() options.concurrency", String(concurrency)],
    );
  }
  throws(
    'map(items, fn, { concurrency: "2" }) throws',
    (pool) => p(pool).map([1], () => 1, { concurrency: "2" }),
    TypeError,
    ["map() options.concurrency", '"2"'],
  );
  throws(
    'map(items, fn, { ordered: "yes" }) throws',
    (pool) => p(pool).map([1], () => 1, { ordered: "yes" }),
    TypeError,
    ["map() options.ordered", "string"],
  );
  throws(
    "map(items, fn, { signal: {} }) throws",
    (pool) => p(pool).map([1], () => 1, { signal: {} }),
    TypeError,
    ["map() options.signal"],
  );
  throws("watch(undefined) throws", (pool) => p(pool).watch(undefined), TypeError, [
    "watch()",
    "undefined",
  ]);
  throws("watch({}) throws", (pool) => p(pool).watch({}), TypeError, [
    "watch() options.intervalMs",
    "undefined",
  ]);
  for (const intervalMs of [0, 0.5, -1, Infinity, NaN]) {
    throws(
      `watch({ intervalMs: ${intervalMs} }) throws`,
      (pool) => pool.watch({ intervalMs }),
      RangeError,
      ["watch() options.intervalMs", String(intervalMs)],
    );
  }
  throws(
    "watch({ intervalMs: 10, signal: 1 }) throws",
    (pool) => p(pool).watch({ intervalMs: 10, signal: 1 }),
    TypeError,
    ["watch() options.signal"],
  );
  throws("health(1) throws", (pool) => p(pool).health(1), TypeError, ["health() thresholds", "1"]);
  throws("health({ bogus: 1 }) throws", (pool) => p(pool).health({ bogus: 1 }), TypeError, [
    "health()",
    '"bogus"',
  ]);
  for (
    const [key, value] of [["utilization", 2], ["hitRate", -0.1], ["createErrorRate", 1.5]] as const
  ) {
    throws(
      `health({ ${key}: ${value} }) throws`,
      (pool) => pool.health({ [key]: value }),
      RangeError,
      [`health() thresholds.${key}`, String(value)],
    );
  }
  throws("health({ waitP99Ms: -1 }) throws", (pool) => pool.health({ waitP99Ms: -1 }), RangeError, [
    "health() thresholds.waitP99Ms",
    "-1",
  ]);
  throws(
    "health({ minAcquires: 1.5 }) throws",
    (pool) => pool.health({ minAcquires: 1.5 }),
    RangeError,
    ["health() thresholds.minAcquires", "1.5"],
  );
  throws(
    'health({ utilization: "high" }) throws',
    (pool) => p(pool).health({ utilization: "high" }),
    TypeError,
    ["health() thresholds.utilization", '"high"'],
  );
  return cases;
}

// ---------------------------------------------------------------- misbehaving factories

/** An acquire that times out because creating fails, and its error. */
async function timeoutCause(t: Ctx, timeoutMs = 500): Promise<unknown> {
  const error = await drive(t.clock, t.pool.acquire({ timeoutMs })).then(
    () => assert.fail("expected the acquire to time out"),
    (e) => e,
  );
  assertError(error, AcquireTimeoutError, ["cannot acquire", `timed out after ${timeoutMs} ms`]);
  assert.ok(t.events.some((e) => e.type === "create-error"), "a create-error event");
  return (error as AcquireTimeoutError).cause;
}

function factoryMisbehaviourCases(): PoolCase[] {
  const cases: PoolCase[] = [];
  const over = (factory: FakeFactory, hooks: Partial<Record<keyof FakeFactory, unknown>>) =>
    Object.assign(factory, hooks);

  for (const value of [undefined, null]) {
    cases.push({
      name: `create() returning ${value}: acquire times out with a TypeError as cause`,
      run: async (t) => {
        over(t.factory, { create: () => value });
        const cause = await timeoutCause(t);
        assertError(cause, TypeError, ["factory.create()", `returned ${value}`]);
      },
    });
  }
  cases.push({
    name: "create() resolving to undefined asynchronously: same TypeError",
    run: async (t) => {
      over(t.factory, { create: () => Promise.resolve(undefined) });
      assertError(await timeoutCause(t), TypeError, ["factory.create()", "returned undefined"]);
    },
  });
  const failure = new Error("connection refused");
  cases.push(
    {
      name: "create() rejecting: acquire times out with that error as cause",
      run: async (t) => {
        over(t.factory, { create: () => Promise.reject(failure) });
        assert.equal(await timeoutCause(t), failure);
      },
    },
    {
      name: "create() throwing synchronously: acquire times out with that error as cause",
      run: async (t) => {
        over(t.factory, {
          create: () => {
            throw failure;
          },
        });
        assert.equal(await timeoutCause(t), failure);
      },
    },
    {
      name: "create() throwing a string: the string is the cause",
      run: async (t) => {
        over(t.factory, {
          create: () => {
            throw "ECONNRESET";
          },
        });
        assert.equal(await timeoutCause(t), "ECONNRESET");
      },
    },
    {
      name: "create() never settling: aborted after createTimeoutMs, PoolError as cause",
      options: { createTimeoutMs: 50 },
      run: async (t) => {
        const signals: AbortSignal[] = [];
        over(t.factory, {
          create: (signal: AbortSignal) => {
            signals.push(signal);
            return new Promise(() => {});
          },
        });
        const cause = await timeoutCause(t);
        assertError(cause, PoolError, ["factory.create()", "50 ms"]);
        // A retry may have started within the last 50 ms (backoff has jitter): let it time out.
        await t.clock.tickAsync(50);
        assert.ok(signals.length > 0 && signals.every((s) => s.aborted), "every create aborted");
        assert.equal(signals[0].reason instanceof PoolError, true);
      },
    },
    {
      name: "create() resolving after its timeout: the late resource is destroyed",
      options: { createTimeoutMs: 50 },
      run: async (t) => {
        const late: FakeResource = { id: 99, destroyed: false, broken: false, dirty: false };
        over(t.factory, {
          create: () => new Promise((resolve) => setTimeout(() => resolve(late), 200)),
        });
        await timeoutCause(t, 100);
        await t.clock.tickAsync(500);
        assert.equal(late.destroyed, true, "the late resource was destroyed");
        assert.equal(t.pool.stats().total, 0, "and never counted");
      },
    },
  );

  const validateFaults: [string, (t: Ctx) => unknown, PoolOptions?][] = [
    ["throwing", () => {
      throw new Error("ping failed");
    }],
    ["rejecting", () => Promise.reject(new Error("ping failed"))],
    ["never settling", () => new Promise(() => {}), { validateTimeoutMs: 50 }],
    ["returning false", () => false],
  ];
  for (const [how, validate, options] of validateFaults) {
    cases.push({
      name: `validate() ${how}: the resource is destroyed and a new one served`,
      options: { validateBypassMs: 0, ...options },
      run: async (t) => {
        const first = await t.pool.acquire();
        const stale = first.value;
        await first.release();
        over(t.factory, { validate });
        const lease = await drive(t.clock, t.pool.acquire({ timeoutMs: 5_000 }));
        assert.notEqual(lease.value, stale, "a fresh resource");
        assert.equal(stale.destroyed, true, "the invalid one destroyed");
        assert.ok(t.events.some((e) => e.type === "validate-fail"), "a validate-fail event");
        assert.equal(t.pool.stats().validationFailures, 1);
        await lease.release();
      },
    });
  }

  const resetFaults: [string, () => unknown, PoolOptions?][] = [
    ["throwing", () => {
      throw new Error("rollback failed");
    }],
    ["rejecting", () => Promise.reject(new Error("rollback failed"))],
    ["never settling", () => new Promise(() => {}), { resetTimeoutMs: 50 }],
  ];
  for (const [how, reset, options] of resetFaults) {
    cases.push({
      name: `reset() ${how}: the resource is destroyed, release() still resolves`,
      options,
      run: async (t) => {
        over(t.factory, { reset });
        const lease = await t.pool.acquire();
        const value = lease.value;
        await drive(t.clock, lease.release());
        await t.clock.tickAsync(0);
        assert.equal(value.destroyed, true);
        const destroy = t.events.find((e) => e.type === "destroy");
        assert.equal(destroy?.type === "destroy" && destroy.reason, "error");
      },
    });
  }

  const destroyFaults: [string, (r: FakeResource) => unknown, PoolOptions?][] = [
    ["throwing", () => {
      throw new Error("socket already closed");
    }],
    ["rejecting", () => Promise.reject(new Error("socket already closed"))],
    ["never settling", () => new Promise(() => {}), { destroyTimeoutMs: 50 }],
  ];
  for (const [how, destroy, options] of destroyFaults) {
    cases.push({
      name: `destroy() ${how}: the slot is freed for the next acquire`,
      options: { max: 1, ...options },
      run: async (t) => {
        over(t.factory, { destroy });
        const lease = await t.pool.acquire();
        await drive(t.clock, lease.destroy());
        const next = await drive(t.clock, t.pool.acquire({ timeoutMs: 1_000 }));
        assert.notEqual(next.value, undefined);
        assert.equal(t.pool.stats().destroyed, 1);
        await next.release();
      },
    });
  }
  return cases;
}

// ---------------------------------------------------------------- throwing callbacks

function callbackCases(): PoolCase[] {
  const cases: PoolCase[] = [];
  const boom = new Error("boom");
  cases.push({
    name: "onEvent throwing: swallowed, the pool goes on",
    run: async (t) => {
      const pool = new Pool(t.factory, {
        onEvent: () => {
          throw boom;
        },
      });
      try {
        const lease = await pool.acquire();
        await lease.release();
        assert.deepEqual([pool.stats().acquired, pool.stats().released], [1, 1]);
        assertInvariant(pool.stats());
      } finally {
        await closeUnderFakeTime(pool, t.clock);
      }
    },
  });
  for (const thrown of [boom, undefined, "text"]) {
    cases.push({
      name: `use() callback throwing ${
        label(thrown)
      }: use rejects with it, the resource is released`,
      run: async (t) => {
        await t.pool.use(() => {
          throw thrown;
        }).then(() => assert.fail("expected a rejection"), (e) => assert.equal(e, thrown));
        const s = t.pool.stats();
        assert.deepEqual([s.active, s.idle, s.destroyed], [0, 1, 0]);
      },
    });
  }
  cases.push(
    {
      name: "use() callback rejecting: use rejects with it, the resource is released",
      run: async (t) => {
        await assert.rejects(t.pool.use(() => Promise.reject(boom)), (e) => e === boom);
        assert.equal(t.pool.stats().idle, 1);
      },
    },
    {
      name: "isBroken throwing: use rejects with the callback's error, the resource is destroyed",
      run: async (t) => {
        Object.assign(t.factory, {
          isBroken: () => {
            throw new Error("isBroken crashed");
          },
        });
        await assert.rejects(t.pool.use(() => Promise.reject(boom)), (e) => e === boom);
        const s = t.pool.stats();
        assert.deepEqual([s.active, s.idle, s.destroyed], [0, 0, 1]);
      },
    },
    {
      name: "evict predicate throwing: evict rejects with it and evicts nothing",
      run: async (t) => {
        const leases = [await t.pool.acquire(), await t.pool.acquire(), await t.pool.acquire()];
        await leases[0].release();
        await leases[1].release();
        let calls = 0;
        await assert.rejects(
          t.pool.evict(() => {
            if (++calls === 2) throw boom;
            return true;
          }),
          (e) => e === boom,
        );
        const s = t.pool.stats();
        assert.deepEqual([s.idle, s.active, s.destroyed], [2, 1, 0], "nothing evicted");
        await leases[2].release();
        assert.equal(t.pool.stats().idle, 3, "the leased one was not marked for eviction");
      },
    },
    {
      name: "map callback throwing: the iteration rejects with it, every lease comes back",
      run: async (t) => {
        const results: number[] = [];
        await assert.rejects(
          (async () => {
            for await (
              const r of t.pool.map([1, 2, 3, 4], (_v, i) => {
                if (i === 3) throw boom;
                return i;
              }, { concurrency: 2 })
            ) results.push(r);
          })(),
          (e) => e === boom,
        );
        assert.equal(t.pool.stats().active, 0);
      },
    },
    {
      name: "map source throwing: the iteration rejects with it, every lease comes back",
      run: async (t) => {
        function* source() {
          yield 1;
          throw boom;
        }
        await assert.rejects(
          (async () => {
            for await (const _ of t.pool.map(source(), (_v, i) => i)) { /* drain */ }
          })(),
          (e) => e === boom,
        );
        assert.equal(t.pool.stats().active, 0);
      },
    },
  );
  return cases;
}

// ---------------------------------------------------------------- misused leases

function leaseCases(): PoolCase[] {
  const cases: PoolCase[] = [];
  cases.push(
    {
      name: "release() twice: counted once, the second is a no-op",
      run: async (t) => {
        const lease = await t.pool.acquire();
        await lease.release();
        await lease.release();
        assert.deepEqual([t.pool.stats().released, t.pool.stats().idle], [1, 1]);
      },
    },
    {
      name: "destroy() after release(): a no-op, the idle resource survives",
      run: async (t) => {
        const lease = await t.pool.acquire();
        await lease.release();
        await lease.destroy();
        assert.deepEqual([t.pool.stats().destroyed, t.pool.stats().idle], [0, 1]);
      },
    },
    {
      name: "release() after destroy(): a no-op",
      run: async (t) => {
        const lease = await t.pool.acquire();
        await lease.destroy();
        await lease.release();
        await lease[Symbol.asyncDispose]();
        assert.deepEqual([t.pool.stats().released, t.pool.stats().idle], [1, 0]);
      },
    },
    {
      name: "value after release(): a PoolError naming lease.value",
      run: async (t) => {
        const lease = await t.pool.acquire();
        await lease.release();
        assertThrows(() => lease.value, PoolError, ["lease.value", "ended"]);
      },
    },
    {
      name: "release() after close() revoked the lease: a no-op, counted once",
      run: async (t) => {
        const lease = await t.pool.acquire();
        await closeUnderFakeTime(t.pool, t.clock);
        assert.equal(lease.released, true, "revoked by close");
        await lease.release();
        await lease.destroy();
        const s = t.pool.stats();
        assert.deepEqual([s.released, s.destroyed, s.total], [1, 1, 0]);
      },
    },
    {
      name: "release() while close() waits: close finishes, the resource is destroyed",
      run: async (t) => {
        const lease = await t.pool.acquire();
        const closing = t.pool.close({ timeoutMs: 10_000 });
        assert.equal(await isPending(closing), true, "close waits for the lease");
        await lease.release();
        await closing;
        assert.equal(lease.released, true);
        assert.deepEqual([t.pool.stats().released, t.pool.stats().destroyed], [1, 1]);
      },
    },
    {
      name: "lease.info gives facts only: no way into the pool's record or a later lease",
      run: async (t) => {
        const first = await t.pool.acquire();
        const info = first.info;
        assert.deepEqual(Object.keys(info).sort(), ["createdAt", "id", "lastUsedAt", "uses"]);
        assert.doesNotThrow(() => JSON.stringify(info), "plain data, not a linked record");
        await first.release();
        const second = await t.pool.acquire();
        const stale = first.info as unknown as Record<string, unknown>;
        assert.equal(stale.lease, undefined, "the next holder's lease is out of reach");
        assert.equal(stale.value, undefined, "the value is out of reach after release");
        (info as { uses: number }).uses = 1_000;
        assert.equal(second.info.uses, 2, "writing to a copy changes nothing");
        await second.release();
      },
    },
    {
      name: "a lease of pool A released has no effect on pool B",
      run: async (t) => {
        const other = new Pool(new FakeFactory());
        try {
          const foreign = await other.acquire();
          const own = await t.pool.acquire();
          await foreign.release();
          assert.deepEqual([t.pool.stats().active, other.stats().idle], [1, 1]);
          await own.release();
        } finally {
          await closeUnderFakeTime(other, t.clock);
        }
      },
    },
  );

  const receivers: [string, (pool: Pool<FakeResource>) => unknown][] = [
    ["{}", () => ({})],
    ["null", () => null],
    ["undefined", () => undefined],
    ["a number", () => 42],
    ["a string", () => "lease"],
    ["a Pool", (pool) => pool],
    ["Object.create(Lease.prototype)", () => Object.create(Lease.prototype)],
    ["a lease look-alike", () => ({ value: 1, released: false, release() {}, destroy() {} })],
  ];
  const methods: [string, (lease: unknown) => unknown][] = [
    ["release()", (l) => Lease.prototype.release.call(l as Lease<unknown>)],
    ["destroy()", (l) => Lease.prototype.destroy.call(l as Lease<unknown>)],
    [
      "[Symbol.asyncDispose]()",
      (l) => Lease.prototype[Symbol.asyncDispose].call(l as Lease<unknown>),
    ],
  ];
  for (const [method, call] of methods) {
    for (const [who, receiver] of receivers) {
      cases.push({
        name: `Lease.prototype.${method} on ${who}: TypeError, nothing touched`,
        run: async (t) => {
          const held = await t.pool.acquire();
          const before = JSON.stringify(t.pool.stats());
          assertThrows(() => call(receiver(t.pool)), TypeError, [`Lease.${method}`, "lease"]);
          assert.equal(JSON.stringify(t.pool.stats()), before, "stats unchanged");
          assert.equal(held.released, false);
          await held.release();
        },
      });
    }
  }
  for (const getter of ["value", "info", "released"]) {
    for (
      const [who, receiver] of receivers.filter(([w]) =>
        ["{}", "a Pool", "Object.create(Lease.prototype)"].includes(w)
      )
    ) {
      cases.push({
        name: `Lease.prototype.${getter} read on ${who}: TypeError`,
        run: (t) => {
          assertThrows(
            () => Reflect.get(Lease.prototype, getter, receiver(t.pool)),
            TypeError,
            [`Lease.${getter}`, "lease"],
          );
        },
      });
    }
  }
  return cases;
}

// ---------------------------------------------------------------- the tables

const TABLES: [string, Case[]][] = [
  ["Pool options: wrong types and out-of-range values", optionCases()],
  ["Pool factory: wrong shapes", factoryCases()],
  ["Pool methods: wrong arguments", argumentCases()],
  ["Pool with a misbehaving factory", factoryMisbehaviourCases()],
  ["Pool with throwing callbacks", callbackCases()],
  ["Lease misuse", leaseCases()],
];

/** How many bad-input cases this file checks (for the README). */
export const BAD_INPUT_CASES: number = TABLES.reduce((n, [, cases]) => n + cases.length, 0);

for (const [title, cases] of TABLES) {
  describe(title, () => {
    for (const c of cases) {
      it(c.name, () => "Class" in c ? runConstructorCase(c) : runPoolCase(c));
    }
  });
}
