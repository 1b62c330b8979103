/**
 * Model-based property tests: fast-check generates random command sequences (acquire with and
 * without deadline and signal, release, destroy, abort, clock ticks, scripted create and
 * validate failures/hangs/delays, broken resources, evict, close) and runs them against a real
 * pool under fake timers, next to an oracle that records what every caller observed.
 *
 * After every step, with the microtask queue drained:
 * - the accounting invariant holds (`assertInvariant`: total ≤ max counting creations and
 *   destroys in flight, `created − destroyed = idle + active + validating`);
 * - `stats()` agrees with what callers saw: `waiting` = acquires still pending, `active` =
 *   leases held, and the acquired / released / timedOut / aborted / exhausted counters, and the
 *   events emitted agree with the counters;
 * - no resource is leased twice and no held lease's resource was destroyed;
 * - FIFO: an acquire is fulfilled only once every acquire called before it has settled
 *   (fulfilled, or rejected by its signal, its deadline, a full queue or close). Acquires that
 *   left the queue early are settled, so they never block the rule, and none may be overtaken;
 * - an acquire with a deadline is settled by its deadline and never times out before it;
 * - no waiter waits while a resource sits idle, unless idle ones are being validated for it;
 * - immediate outcomes are the predicted ones (closed, pre-aborted, full queue).
 * At the end the pool is closed and the clock run forward: every acquire, release, evict and
 * the close itself settled, every resource the factory made was destroyed exactly once, and no
 * timer is left.
 *
 * Runs are reproducible: fake timers drive all time, and `Math.random` (backoff and lifetime
 * jitter) is a seeded generator during each run. A failure prints how to replay it:
 * `EDGEPOOL_SEED=<seed> EDGEPOOL_PATH=<property>/<path> npm test -- property` (the path names
 * its property; the others then pass at once). Without EDGEPOOL_SEED every run of the suite
 * draws new seeds; EDGEPOOL_RUNS_SCALE multiplies the number of runs (e.g. 10 for a long hunt).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AcquireTimeoutError,
  type Lease,
  Pool,
  PoolClosedError,
  type PoolEventType,
  PoolExhaustedError,
  type PoolOptions,
  type PoolStats,
} from "../mod.ts";
import { assertInvariant, FakeFactory, type FakeResource, fakeTime } from "./_helpers.ts";

type Clock = ReturnType<typeof fakeTime>;
type Step = FakeFactory["createPlan"][number];

/** Every run of every property in this file; CI runs at least 10 000 in total. */
const RUNS = [2_000, 2_000, 2_000, 2_000, 2_000, 2_000].map((n) =>
  Math.ceil(n * Number(readEnv("EDGEPOOL_RUNS_SCALE") ?? 1))
);
const ENV_SEED = readEnv("EDGEPOOL_SEED");
const ENV_PATH = readEnv("EDGEPOOL_PATH");

function readEnv(name: string): string | undefined {
  const value = (globalThis as { process?: { env: Record<string, string | undefined> } }).process
    ?.env[name];
  return value === undefined || value === "" ? undefined : value;
}

// ---------------------------------------------------------------- the scripted factory

/**
 * The shared fake factory with two changes for the model: it counts every destroy call per
 * resource (the base class asserts, but a throw inside the pool's destroy hook is swallowed),
 * and a scripted delay clears its own timer when aborted, so that any timer left after close
 * is the pool's.
 */
class ModelFactory extends FakeFactory {
  destroyCalls = new Map<FakeResource, number>();
  #nextId = 1;

  override async create(signal: AbortSignal): Promise<FakeResource> {
    this.createCalls++;
    await play(this.createPlan.shift() ?? "ok", signal, "create failed");
    const r: FakeResource = { id: this.#nextId++, destroyed: false, broken: false, dirty: false };
    this.created.push(r);
    return r;
  }

  override async validate(r: FakeResource, signal: AbortSignal): Promise<boolean> {
    this.validated.push(r);
    await play(this.validatePlan.shift() ?? "ok", signal, "validate failed");
    return !r.broken;
  }

  override destroy(r: FakeResource): void {
    this.destroyCalls.set(r, (this.destroyCalls.get(r) ?? 0) + 1);
    if (r.destroyed) return;
    r.destroyed = true;
    this.destroyed.push(r);
    if (this.destroyThrows) throw new Error("destroy failed");
  }
}

function play(step: Step, signal: AbortSignal, message: string): Promise<void> {
  if (step === "ok") return Promise.resolve();
  if (step === "fail") return Promise.reject(new Error(message));
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    if (step === "hang") {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      return;
    }
    const ms = "delayMs" in step ? step.delayMs : step.failAfterMs;
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      if ("failAfterMs" in step) reject(new Error(message));
      else resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

// ---------------------------------------------------------------- oracle and system

/** One call of `pool.acquire()` and what its caller saw. */
interface Attempt {
  seq: number;
  state: "pending" | "fulfilled" | "rejected";
  lease?: Lease<FakeResource>;
  error?: unknown;
  controller?: AbortController;
  reason?: Error;
  calledAt: number;
  settledAt: number;
  timeoutMs: number;
  /** The outcome the model predicts at call time, when it can. */
  expect?: "closed" | "aborted" | "exhausted" | "served";
  /** We released or destroyed its lease (or it was revoked at close). */
  givenBack: boolean;
}

/** The oracle: what callers did and saw, and what must hold. */
interface Model {
  options: Required<Pick<PoolOptions, "max" | "min" | "maxWaiting">> & PoolOptions;
  attempts: Attempt[];
  closed: boolean;
  /** First release()/destroy() of leases the pool still counted as active, plus revoked ones. */
  released: number;
  /** Leases close() revoked: counted as released, with no "release" event. */
  revoked: number;
  ended: Lease<FakeResource>[];
  violations: string[];
  pending: Promise<unknown>[];
  events: Map<PoolEventType, number>;
  /** No event listener and a factory with no validate or reset hook: the pool's fast paths. */
  quiet: boolean;
}

interface Real {
  pool: Pool<FakeResource>;
  factory: ModelFactory;
  clock: Clock;
}

type Cmd = fc.AsyncCommand<Model, Real>;

function command(
  name: string,
  check: (m: Model) => boolean,
  run: (m: Model, r: Real) => Promise<void> | void,
): Cmd {
  return {
    check,
    async run(m, r) {
      await run(m, r);
      await settle(r);
      checkStep(m, r);
    },
    toString: () => name,
  };
}

/** Drains microtasks (a native macrotask turn) and runs timers due now. */
async function settle(r: Real): Promise<void> {
  await r.clock.tickAsync(0);
}

function held(m: Model): Attempt[] {
  return m.attempts.filter((a) => a.state === "fulfilled" && !a.givenBack);
}

function waiting(m: Model): Attempt[] {
  return m.attempts.filter((a) => a.state === "pending");
}

function count(m: Model, pred: (a: Attempt) => boolean): number {
  let n = 0;
  for (const a of m.attempts) if (pred(a)) n++;
  return n;
}

/** The pool revokes leases when close gives up waiting: the oracle follows. */
function noteRevoked(m: Model): void {
  for (const a of held(m)) {
    if (a.lease!.released) {
      if (!m.closed) m.violations.push(`lease of #${a.seq} ended without release before close`);
      a.givenBack = true;
      m.released++;
      m.revoked++;
    }
  }
}

function checkStep(m: Model, r: Real): void {
  noteRevoked(m);
  assert.deepEqual(m.violations, [], "violations");
  const s = r.pool.stats();
  assertInvariant(s);
  const now = Date.now();

  const pending = waiting(m);
  assert.equal(s.waiting, pending.length, "stats.waiting = acquires still pending");
  const leases = held(m);
  assert.equal(s.active, leases.length, "stats.active = leases held");
  const values = new Set(leases.map((a) => a.lease!.value));
  assert.equal(values.size, leases.length, "a resource is leased twice");
  for (const a of leases) {
    assert.equal(a.lease!.value.destroyed, false, `lease of #${a.seq} holds a destroyed resource`);
  }

  assert.equal(s.acquired, count(m, (a) => a.state === "fulfilled"), "stats.acquired");
  assert.equal(s.released, m.released, "stats.released");
  assert.equal(s.timedOut, count(m, (a) => a.error instanceof AcquireTimeoutError), "timedOut");
  assert.equal(
    s.aborted,
    count(m, (a) => a.error !== undefined && a.error === a.reason),
    "aborted",
  );
  assert.equal(s.exhausted, count(m, (a) => a.error instanceof PoolExhaustedError), "exhausted");
  assert.ok(s.created <= r.factory.created.length, "stats.created ≤ resources the factory made");
  checkEvents(m, s);

  for (const a of pending) {
    assert.ok(now - a.calledAt < a.timeoutMs, `#${a.seq} still waits past its deadline`);
  }
  for (const a of m.attempts) {
    if (a.error instanceof AcquireTimeoutError) {
      assert.ok(a.settledAt - a.calledAt >= a.timeoutMs, `#${a.seq} timed out early`);
    }
    if (a.expect !== undefined && a.expect !== "served") {
      const want = { closed: "PoolClosedError", aborted: "abort", exhausted: "PoolExhaustedError" };
      assert.equal(outcome(a), want[a.expect], `#${a.seq} expected ${a.expect}`);
    } else if (a.expect === "served") {
      assert.equal(a.state, "fulfilled", `#${a.seq} expected to be served from idle at once`);
    }
  }
  if (!m.closed && s.waiting > 0 && s.idle > 0) {
    assert.ok(
      s.waiting <= s.validating,
      `waiters wait beside idle resources: ${JSON.stringify(s)}`,
    );
  }
}

function outcome(a: Attempt): string {
  if (a.state !== "rejected") return a.state;
  if (a.error === a.reason) return "abort";
  return (a.error as Error).name;
}

const EVENT_COUNTERS: [PoolEventType, keyof PoolStats][] = [
  ["acquire", "acquired"],
  ["release", "released"],
  ["create", "created"],
  ["destroy", "destroyed"],
  ["timeout", "timedOut"],
  ["abort", "aborted"],
  ["exhausted", "exhausted"],
  ["create-error", "createErrors"],
  ["validate-fail", "validationFailures"],
];

function checkEvents(m: Model, s: PoolStats): void {
  if (m.quiet) return; // nobody listened
  for (const [type, key] of EVENT_COUNTERS) {
    const silent = type === "release" ? m.revoked : 0;
    assert.equal((m.events.get(type) ?? 0) + silent, s[key], `"${type}" events vs stats.${key}`);
  }
}

// ---------------------------------------------------------------- commands

function acquire(kind: "none" | "live" | "aborted", timeoutMs: number | undefined): Cmd {
  return command(
    `acquire(${kind}${timeoutMs === undefined ? "" : `, ${timeoutMs} ms`})`,
    () => true,
    (m, r) => {
      const s = r.pool.stats();
      const a: Attempt = {
        seq: m.attempts.length,
        state: "pending",
        calledAt: Date.now(),
        settledAt: 0,
        timeoutMs: timeoutMs ?? m.options.acquireTimeoutMs ?? 30_000,
        givenBack: false,
      };
      if (kind !== "none") {
        a.controller = new AbortController();
        a.reason = new Error(`abort #${a.seq}`);
        if (kind === "aborted") a.controller.abort(a.reason);
      }
      const footprint = s.total + s.creating + s.destroying;
      if (m.closed) a.expect = "closed";
      else if (kind === "aborted") a.expect = "aborted";
      else if (
        (s.waiting > 0 || s.idle === 0) && s.waiting >= m.options.maxWaiting &&
        footprint >= m.options.max
      ) a.expect = "exhausted";
      else if (
        s.waiting === 0 && s.idle > 0 && !m.options.validateOnAcquire &&
        !m.options.maxLifetimeMs
      ) a.expect = "served";
      m.attempts.push(a);
      const options = timeoutMs === undefined && a.controller === undefined
        ? undefined
        : { timeoutMs, signal: a.controller?.signal };
      r.pool.acquire(options).then(
        (lease) => {
          a.state = "fulfilled";
          a.lease = lease;
          a.settledAt = Date.now();
          for (const b of m.attempts) {
            if (b.seq >= a.seq) break;
            if (b.state === "pending") {
              m.violations.push(`FIFO: #${a.seq} was served while #${b.seq} still waited`);
            }
          }
        },
        (error) => {
          a.state = "rejected";
          a.error = error;
          a.settledAt = Date.now();
          const known = error === a.reason || error instanceof AcquireTimeoutError ||
            error instanceof PoolExhaustedError || error instanceof PoolClosedError;
          if (!known) m.violations.push(`#${a.seq} rejected with ${String(error)}`);
          if (error instanceof PoolClosedError && !m.closed) {
            m.violations.push(`#${a.seq} rejected as closed before close()`);
          }
        },
      );
    },
  );
}

function giveBack(how: "release" | "destroy", k: number): Cmd {
  return command(`${how}(held[${k}])`, (m) => held(m).length > 0, (m) => {
    const leases = held(m);
    const a = leases[k % leases.length];
    const lease = a.lease!;
    a.givenBack = true;
    if (!lease.released) m.released++;
    m.ended.push(lease);
    m.pending.push(how === "release" ? lease.release() : lease.destroy());
  });
}

function giveBackAgain(k: number): Cmd {
  return command(`release again(ended[${k}])`, (m) => m.ended.length > 0, (m) => {
    const lease = m.ended[k % m.ended.length];
    m.pending.push(k % 2 === 0 ? lease.release() : lease.destroy());
  });
}

function abort(k: number): Cmd {
  const live = (m: Model) =>
    m.attempts.filter((a) => a.controller !== undefined && !a.controller.signal.aborted);
  return command(`abort(signals[${k}])`, (m) => live(m).length > 0, (m) => {
    const list = live(m);
    const a = list[k % list.length];
    a.controller!.abort(a.reason);
  });
}

function tick(ms: number): Cmd {
  return command(`tick(${ms})`, () => true, async (_m, r) => {
    await r.clock.tickAsync(ms);
  });
}

function planCreate(step: Step): Cmd {
  return command(`next create: ${JSON.stringify(step)}`, () => true, (_m, r) => {
    r.factory.createPlan.push(step);
  });
}

function planValidate(step: Step): Cmd {
  return command(`next validate: ${JSON.stringify(step)}`, () => true, (_m, r) => {
    r.factory.validatePlan.push(step);
  });
}

function breakResource(k: number): Cmd {
  return command(`break(held[${k}])`, (m) => held(m).length > 0, (m) => {
    const leases = held(m);
    leases[k % leases.length].lease!.value.broken = true;
  });
}

function toggle(flag: "destroyThrows" | "resetThrows"): Cmd {
  return command(`toggle ${flag}`, () => true, (_m, r) => {
    r.factory[flag] = !r.factory[flag];
  });
}

function evict(mode: "all" | "odd" | "broken"): Cmd {
  return command(`evict(${mode})`, () => true, (m, r) => {
    const predicate = mode === "all"
      ? undefined
      : mode === "odd"
      ? (v: FakeResource) => v.id % 2 === 1
      : (v: FakeResource) => v.broken;
    m.pending.push(r.pool.evict(predicate));
  });
}

function close(timeoutMs: number): Cmd {
  return command(`close(${timeoutMs} ms)`, (m) => !m.closed, (m, r) => {
    m.closed = true;
    m.pending.push(r.pool.close({ timeoutMs }));
  });
}

// ---------------------------------------------------------------- arbitraries

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>("ok"),
  fc.constant<Step>("fail"),
  fc.constant<Step>("hang"),
  fc.integer({ min: 1, max: 3_000 }).map((delayMs): Step => ({ delayMs })),
  fc.integer({ min: 1, max: 3_000 }).map((failAfterMs): Step => ({ failAfterMs })),
);

const optionsArb = fc.record({
  max: fc.integer({ min: 1, max: 4 }),
  min: fc.integer({ min: 0, max: 2 }),
  maxWaiting: fc.oneof(fc.constant(Infinity), fc.integer({ min: 0, max: 4 })),
  acquireTimeoutMs: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 5_000 })),
  createTimeoutMs: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 3_000 })),
  validateTimeoutMs: fc.integer({ min: 1, max: 2_000 }),
  validateBypassMs: fc.integer({ min: 0, max: 1_000 }),
  validateOnAcquire: fc.boolean(),
  idleOrder: fc.constantFrom("lifo" as const, "fifo" as const),
  maxUses: fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 3 })),
  maxLifetimeMs: fc.oneof(fc.constant(0), fc.integer({ min: 1_000, max: 20_000 })),
  lifetimeJitter: fc.constantFrom(0, 0.025, 0.5),
  idleTimeoutMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 10_000 })),
  keepaliveMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 999 })),
  reapIntervalMs: fc.integer({ min: 1, max: 1_000 }),
  closeTimeoutMs: fc.integer({ min: 0, max: 5_000 }),
}).map((o) => ({ ...o, min: Math.min(o.min, o.max) }));

const deadlineArb = fc.option(fc.integer({ min: 0, max: 4_000 }), { nil: undefined });
const signalArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant("none" as const) },
  { weight: 3, arbitrary: fc.constant("live" as const) },
  { weight: 1, arbitrary: fc.constant("aborted" as const) },
);
const tickArb = fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 2_500 }));
const k = fc.nat({ max: 15 });

interface Mix {
  acquire: number;
  giveBack: number;
  abort: number;
  tick: number;
  faults: number;
  /** Slow (but passing) validations: they hold resources in `validating` while others wait. */
  slowChecks: number;
  close: number;
}

function commandsArb(mix: Mix, maxCommands: number) {
  const w = (weight: number, arbitrary: fc.Arbitrary<Cmd>) => ({ weight, arbitrary });
  const pick = fc.oneof(
    w(mix.acquire, fc.tuple(signalArb, deadlineArb).map(([s, t]) => acquire(s, t))),
    w(mix.giveBack, k.map((i) => giveBack("release", i))),
    w(Math.ceil(mix.giveBack / 3), k.map((i) => giveBack("destroy", i))),
    w(1, k.map(giveBackAgain)),
    w(mix.abort, k.map(abort)),
    w(mix.tick, tickArb.map(tick)),
    w(mix.faults, stepArb.map(planCreate)),
    w(mix.faults, stepArb.map(planValidate)),
    w(mix.slowChecks, fc.integer({ min: 1, max: 500 }).map((delayMs) => planValidate({ delayMs }))),
    w(Math.ceil(mix.faults / 2), k.map(breakResource)),
    w(
      Math.ceil(mix.faults / 4),
      fc.constantFrom("destroyThrows" as const, "resetThrows" as const)
        .map(toggle),
    ),
    w(1, fc.constantFrom("all" as const, "odd" as const, "broken" as const).map(evict)),
    w(mix.close, fc.integer({ min: 0, max: 3_000 }).map(close)),
  );
  // fc.commands takes a list of arbitraries; one weighted oneof keeps the mix tunable.
  return fc.commands([pick], { maxCommands, size: "max" });
}

// ---------------------------------------------------------------- one run

/** A small deterministic PRNG (mulberry32): backoff and lifetime jitter replay exactly. */
function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), 1 | t);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

async function runModel(
  options: Model["options"],
  randomSeed: number,
  cmds: Iterable<Cmd>,
  quiet: boolean,
): Promise<void> {
  const clock = fakeTime();
  const random = Math.random;
  Math.random = prng(randomSeed);
  let pool: Pool<FakeResource> | undefined;
  try {
    const factory = new ModelFactory();
    const model: Model = {
      options,
      attempts: [],
      closed: false,
      released: 0,
      revoked: 0,
      ended: [],
      violations: [],
      pending: [],
      events: new Map(),
      quiet,
    };
    if (quiet) {
      // Only create and destroy, and nobody listening: what a plain pool runs.
      const { validateOnAcquire: _, ...rest } = options;
      model.options = rest;
      const bare = {
        create: (signal: AbortSignal) => factory.create(signal),
        destroy: (value: FakeResource) => factory.destroy(value),
      };
      pool = new Pool(bare, rest);
    } else {
      pool = new Pool(factory, {
        ...options,
        onEvent: (e) => void model.events.set(e.type, (model.events.get(e.type) ?? 0) + 1),
      });
    }
    const real: Real = { pool, factory, clock };
    await settle(real);
    checkStep(model, real);
    await fc.asyncModelRun(() => ({ model, real }), cmds);
    await finish(model, real);
  } finally {
    // Never leave a pool running on the real clock, nor the fake clock installed.
    if (pool && !pool.closed) void pool.close({ timeoutMs: 0 }).catch(() => {});
    clock.uninstall();
    Math.random = random;
  }
}

/** Closes the pool, runs the clock until everything settled, and checks the aftermath. */
async function finish(m: Model, r: Real): Promise<void> {
  m.closed = true;
  let closed = false;
  const closing = r.pool.close().then(() => void (closed = true));
  const settled = Promise.allSettled(m.pending);
  let pendingDone = false;
  void settled.then(() => void (pendingDone = true));
  for (let i = 0; i < 200 && !(closed && pendingDone && waiting(m).length === 0); i++) {
    await r.clock.tickAsync(1_000);
  }
  await settle(r);
  assert.ok(closed, "close() settled");
  assert.ok(pendingDone, "every release, evict and close settled");
  for (const result of await settled) {
    assert.equal(result.status, "fulfilled", "release, evict and close never reject");
  }
  await closing;
  assert.deepEqual(waiting(m).map((a) => a.seq), [], "every acquire settled");
  noteRevoked(m);
  assert.deepEqual(held(m).map((a) => a.seq), [], "every lease ended");
  assert.deepEqual(m.violations, [], "violations");

  const s = r.pool.stats();
  assertInvariant(s);
  assert.deepEqual(
    [s.total, s.idle, s.active, s.validating, s.creating, s.destroying, s.waiting],
    [0, 0, 0, 0, 0, 0, 0],
    "nothing left after close",
  );
  assert.equal(s.created, s.destroyed, "every resource the pool counted was destroyed");
  for (const v of r.factory.created) {
    assert.equal(r.factory.destroyCalls.get(v) ?? 0, 1, `resource ${v.id} destroyed once`);
  }
  assert.equal(r.factory.destroyCalls.size, r.factory.created.length, "only made ones destroyed");
  assert.equal(r.clock.countTimers(), 0, "no timer left after close");
  checkEvents(m, s);
  if (!m.quiet) assert.equal(m.events.get("close"), 1, "one close event");
  await assert.rejects(r.pool.acquire(), PoolClosedError);
}

// ---------------------------------------------------------------- the properties

function property(mix: Mix, maxCommands: number, options = optionsArb, quiet = false) {
  return fc.asyncProperty(
    options,
    fc.integer(),
    commandsArb(mix, maxCommands),
    (options, randomSeed, cmds) => runModel(options, randomSeed, cmds, quiet),
  );
}

/**
 * Runs `prop` with fast-check and, on failure, throws an error that says how to replay it. The
 * replay path is prefixed with the property's name (`contention/2:0:…`): a path means nothing
 * to another property, so while replaying, the others pass at once.
 */
async function assertProperty<Ts>(
  name: string,
  prop: fc.IAsyncPropertyWithHooks<Ts>,
  numRuns: number,
): Promise<void> {
  const params: fc.Parameters<Ts> = { numRuns };
  if (ENV_SEED !== undefined) params.seed = Number(ENV_SEED);
  if (ENV_PATH !== undefined) {
    const [target, path] = ENV_PATH.includes("/") ? ENV_PATH.split("/", 2) : [name, ENV_PATH];
    if (target !== name) return;
    params.path = path;
  }
  const details = await fc.check(prop, params);
  if (!details.failed) return;
  const replay = `EDGEPOOL_SEED=${details.seed}` +
    (details.counterexamplePath === null
      ? ""
      : ` EDGEPOOL_PATH=${name}/${details.counterexamplePath}`) +
    " npm test -- property";
  const report = fc.defaultReportMessage(details) ?? "property failed";
  throw new Error(`property "${name}" failed; replay with: ${replay}\n${report}`, {
    cause: details.errorInstance,
  });
}

describe("Pool under random command sequences (model-based)", () => {
  it("keeps its invariants under a mix of every operation", async () => {
    const mix = { acquire: 6, giveBack: 4, abort: 2, tick: 4, faults: 2, slowChecks: 1, close: 1 };
    await assertProperty("mix", property(mix, 30), RUNS[0]);
  });

  it("keeps its invariants on the quiet paths: no listener, no validate or reset hook", async () => {
    // The fast release to idle, coarse clocks and sampled wait timing run only here.
    const mix = { acquire: 6, giveBack: 4, abort: 2, tick: 4, faults: 2, slowChecks: 1, close: 1 };
    await assertProperty("quiet", property(mix, 30, optionsArb, true), RUNS[5]);
  });

  it("serves waiters first come first served under contention with aborts and deadlines", async () => {
    const mix = { acquire: 8, giveBack: 3, abort: 3, tick: 3, faults: 0, slowChecks: 2, close: 0 };
    // A small pool and an unbounded queue, so that most acquires wait.
    const small = optionsArb.map((o) => ({
      ...o,
      max: Math.min(o.max, 2),
      min: 0,
      maxWaiting: Infinity,
      maxUses: Infinity,
    }));
    await assertProperty("contention", property(mix, 30, small), RUNS[1]);
  });

  it("stays consistent while creates and validations fail, hang or crawl", async () => {
    const mix = { acquire: 5, giveBack: 3, abort: 1, tick: 4, faults: 6, slowChecks: 1, close: 0 };
    await assertProperty("faults", property(mix, 30), RUNS[2]);
  });

  it("settles every waiter and destroys every resource once when closed mid-flight", async () => {
    const mix = { acquire: 5, giveBack: 2, abort: 1, tick: 2, faults: 2, slowChecks: 1, close: 2 };
    await assertProperty("close", property(mix, 20), RUNS[3]);
  });

  it("ages resources (lifetime, idle timeout, keepalive, min upkeep) without losing any", async () => {
    const mix = { acquire: 4, giveBack: 4, abort: 1, tick: 6, faults: 1, slowChecks: 1, close: 0 };
    const aging = optionsArb.map((o) => ({
      ...o,
      min: Math.min(1, o.max),
      maxLifetimeMs: o.maxLifetimeMs || 2_000,
      idleTimeoutMs: o.idleTimeoutMs || 1_500,
      keepaliveMs: o.keepaliveMs || 300,
      reapIntervalMs: Math.min(o.reapIntervalMs, 250),
    }));
    await assertProperty("aging", property(mix, 30, aging), RUNS[4]);
  });
});
