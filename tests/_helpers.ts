/**
 * Shared test helpers: a scripted fake factory, pending-promise checks, pool wrappers that
 * always close, fake timers, stats snapshots, and the pool's accounting invariant.
 */
import assert from "node:assert/strict";
import * as FakeTimers from "@sinonjs/fake-timers";
import { spawn } from "node:child_process";
import { join as joinPath, resolve as resolvePath } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  type Factory,
  type Lease,
  Pool,
  type PoolEvent,
  type PoolOptions,
  type PoolStats,
} from "../mod.ts";

export { countingSignal } from "./_signals.ts";

/** A resource made by {@linkcode FakeFactory}. */
export interface FakeResource {
  id: number;
  destroyed: boolean;
  /** Set to make the next validate() of this resource return false. */
  broken: boolean;
  /** Set by the test to emulate a session left dirty; reset() clears it. */
  dirty: boolean;
}

type Step = "ok" | "fail" | "hang" | { delayMs: number } | { failAfterMs: number };

/**
 * A factory whose behaviour is scripted per call and that records what happened.
 * `createPlan` steps are consumed by each create in order; when empty, creates succeed at once.
 */
export class FakeFactory implements Factory<FakeResource> {
  created: FakeResource[] = [];
  destroyed: FakeResource[] = [];
  validated: FakeResource[] = [];
  resets: FakeResource[] = [];
  createCalls = 0;
  createSignals: AbortSignal[] = [];
  createPlan: Step[] = [];
  validatePlan: Step[] = [];
  destroyThrows = false;
  resetThrows = false;
  #next = 1;

  async create(signal: AbortSignal): Promise<FakeResource> {
    this.createCalls++;
    this.createSignals.push(signal);
    const step = this.createPlan.shift() ?? "ok";
    await this.#play(step, signal, "create failed");
    const r: FakeResource = { id: this.#next++, destroyed: false, broken: false, dirty: false };
    this.created.push(r);
    return r;
  }

  destroy(r: FakeResource): void {
    assert.equal(r.destroyed, false, `resource ${r.id} destroyed twice`);
    r.destroyed = true;
    this.destroyed.push(r);
    if (this.destroyThrows) throw new Error("destroy failed");
  }

  async validate(r: FakeResource, signal: AbortSignal): Promise<boolean> {
    this.validated.push(r);
    const step = this.validatePlan.shift() ?? "ok";
    await this.#play(step, signal, "validate failed");
    return !r.broken;
  }

  /** When above 0, reset() finishes this long after it is called (an async hook). */
  resetDelayMs = 0;

  reset(r: FakeResource): void | Promise<void> {
    this.resets.push(r);
    if (this.resetThrows) throw new Error("reset failed");
    if (this.resetDelayMs > 0) {
      return new Promise((resolve) =>
        setTimeout(() => {
          r.dirty = false;
          resolve();
        }, this.resetDelayMs)
      );
    }
    r.dirty = false;
  }

  /** Resources created and not destroyed. */
  get alive(): number {
    return this.created.length - this.destroyed.length;
  }

  async #play(step: Step, signal: AbortSignal, message: string): Promise<void> {
    if (step === "ok") return;
    if (step === "fail") throw new Error(message);
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      if (step === "hang") return;
      const ms = "delayMs" in step ? step.delayMs : step.failAfterMs;
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        if ("failAfterMs" in step) reject(new Error(message));
        else resolve();
      }, ms);
      // An abort ends the step: its timer must not outlive it.
      signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
    });
  }
}

/** Resolves true when `promise` has not settled after all queued microtasks and a macrotask. */
export async function isPending(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol("pending");
  promise.catch(() => {}); // settle-check only; the test still observes the real outcome
  const winner = await Promise.race([
    promise.then(() => "settled", () => "settled"),
    flush().then(() => marker),
  ]);
  return winner === marker;
}

/** Asserts that `promise` is still pending. */
export async function assertPending(promise: Promise<unknown>, message?: string): Promise<void> {
  assert.equal(await isPending(promise), true, message ?? "expected the promise to be pending");
}

/** Lets every queued microtask (and promise chain) run. Works with or without fake timers. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** Asserts the pool's accounting invariant on a stats snapshot. */
export function assertInvariant(s: PoolStats): void {
  assert.equal(s.created - s.destroyed, s.idle + s.active + s.validating, "created − destroyed");
  assert.equal(s.total, s.idle + s.active + s.validating, "total");
  assert.ok(
    s.total + s.creating + s.destroying <= s.max,
    `footprint above max: ${JSON.stringify(s)}`,
  );
}

/** Runs `fn` with a fresh pool over a fresh FakeFactory; always closes the pool. */
export function withPool(
  options: PoolOptions,
  fn: (pool: Pool<FakeResource>, factory: FakeFactory) => Promise<void>,
  factory = new FakeFactory(),
): Promise<void> {
  return runPool(options, fn, factory, (pool) => pool.close({ timeoutMs: 0 }));
}

/** {@linkcode withPool} for a test body that awaits nothing. */
export function withPoolSync(
  options: PoolOptions,
  fn: (pool: Pool<FakeResource>) => void,
): Promise<void> {
  return withPool(options, (pool) => Promise.resolve(fn(pool)));
}

/** Runs `fn` with a pool over `factory`, then closes it with `close`, even when `fn` throws. */
async function runPool(
  options: PoolOptions,
  fn: (pool: Pool<FakeResource>, factory: FakeFactory) => Promise<void>,
  factory: FakeFactory,
  close: (pool: Pool<FakeResource>) => Promise<void>,
): Promise<void> {
  const pool = new Pool(factory, options);
  try {
    await fn(pool, factory);
  } finally {
    await close(pool);
  }
}

/** Runs `promise` to its rejection and returns the error; fails the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

/** A consistent stats snapshot of an idle pool with `max: 10`, with `overrides` applied. */
export function statsSnapshot(overrides: Partial<PoolStats> = {}): PoolStats {
  return {
    total: 0,
    idle: 0,
    active: 0,
    validating: 0,
    creating: 0,
    destroying: 0,
    waiting: 0,
    min: 0,
    max: 10,
    acquired: 0,
    released: 0,
    created: 0,
    destroyed: 0,
    timedOut: 0,
    aborted: 0,
    exhausted: 0,
    createErrors: 0,
    validations: 0,
    validationFailures: 0,
    hitRate: 1,
    waitMs: { avg: 0, p50: 0, p99: 0, max: 0, count: 0, sum: 0 },
    ...overrides,
  };
}

/** Leases `n` resources at once (so they are created together, at the same instant). */
export function leaseMany(pool: Pool<FakeResource>, n: number): Promise<Lease<FakeResource>[]> {
  return Promise.all(Array.from({ length: n }, () => pool.acquire()));
}

/** Releases every lease in `leases`. */
export async function releaseAll(leases: Lease<FakeResource>[]): Promise<void> {
  await Promise.all(leases.map((lease) => lease.release()));
}

/** Installs fake timers (setTimeout, setInterval, Date, performance) for one test. */
export function fakeTime(): FakeTimers.Clock & { uninstall(): void } {
  return FakeTimers.withGlobal(globalThis).install({
    toFake: [
      "setTimeout",
      "clearTimeout",
      "setInterval",
      "clearInterval",
      "Date",
      "performance",
    ],
    shouldClearNativeTimers: true,
  });
}

let clockInUse: ReturnType<typeof fakeTime> | undefined;

/** Runs `fn` with fake timers installed; always uninstalls them, even when `fn` throws. */
export async function withFakeTime(
  fn: (clock: ReturnType<typeof fakeTime>) => Promise<void>,
): Promise<void> {
  // A test the runner gave up on while its body still awaited (a hang) never reached its
  // `finally`: uninstall its clock, so that one failure does not fail every later test.
  if (clockInUse !== undefined) {
    clockInUse.uninstall();
    clockInUse = undefined;
  }
  const clock = fakeTime();
  clockInUse = clock;
  try {
    await fn(clock);
  } finally {
    if (clockInUse === clock) {
      clockInUse = undefined;
      clock.uninstall();
    }
  }
}

/** A seeded pseudo-random generator in [0, 1) (mulberry32), so a failing run can be replayed. */
export function seededRandom(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** The events of one type, narrowed: `eventsOf(events, "destroy")`. */
export function eventsOf<K extends PoolEvent["type"]>(
  events: PoolEvent[],
  type: K,
): Extract<PoolEvent, { type: K }>[] {
  return events.filter((e): e is Extract<PoolEvent, { type: K }> => e.type === type);
}

/** The `destroy` events among `events`. */
export function destroys(events: PoolEvent[]): Extract<PoolEvent, { type: "destroy" }>[] {
  return eventsOf(events, "destroy");
}

/** What {@linkcode withTimedPool} hands its callback. */
export interface TimedPool {
  pool: Pool<FakeResource>;
  factory: FakeFactory;
  clock: ReturnType<typeof fakeTime>;
  /** Every event the pool emitted, in order (recorded through `onEvent`). */
  events: PoolEvent[];
}

/**
 * Runs `fn` under fake time with a pool over `factory` whose events are recorded. Always closes
 * the pool, driving the fake clock meanwhile (close() bounds its waits with timers, which fake
 * time does not run by itself), then uninstalls the timers.
 */
export async function withTimedPool(
  options: PoolOptions,
  fn: (t: TimedPool) => Promise<void>,
  factory: FakeFactory = new FakeFactory(),
): Promise<void> {
  const clock = fakeTime();
  const events: PoolEvent[] = [];
  try {
    await withClockPool(
      clock,
      { ...options, onEvent: (event) => events.push(event) },
      (pool) => fn({ pool, factory, clock, events }),
      factory,
    );
  } finally {
    clock.uninstall();
  }
}

/**
 * Closes `pool` (with `timeoutMs: 0`) while fake timers are installed, driving the clock:
 * close() bounds its waits with timers, which fake time does not run by itself, so a test that
 * failed with a lease still out would otherwise hang instead of reporting its failure.
 */
export async function closeUnderFakeTime<T>(
  pool: Pool<T>,
  clock: ReturnType<typeof fakeTime>,
): Promise<void> {
  const closing = pool.close({ timeoutMs: 0 });
  for (let i = 0; i < 100 && await isPending(closing); i++) await clock.tickAsync(1_000);
  await closing;
}

/** A runtime the suite runs on, as a binary in `node_modules/.bin`. */
export type Runtime = "deno" | "bun" | "node";

/** How a script run by {@linkcode runScript} ended. */
export interface ScriptRun {
  /** The exit code; `null` when a signal ended it. */
  code: number | null;
  /** The signal that ended it, if any (`"SIGKILL"` after a timeout). */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** True when it had not exited within the timeout and was killed. */
  timedOut: boolean;
  /** Real milliseconds from spawn to exit. */
  ms: number;
}

// Taken at load, before any test installs fake timers: a script's deadline is real time.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
const realNow = Date.now;
const ROOT_DIR = fileURLToPath(new URL("../", import.meta.url));
const BIN_DIR = fileURLToPath(new URL("../node_modules/.bin/", import.meta.url));

/**
 * Runs a script with one runtime (`deno run -A`, `bun`, `node`), using the binaries in this
 * repository's `node_modules/.bin` by absolute path, from the repository root. Variables a
 * parent test runner set for its own workers are removed. A script still running after
 * `timeoutMs` is killed with SIGKILL and reported as `timedOut`. Resolves however the script
 * ends; rejects only when the runtime cannot be started.
 */
export function runScript(
  runtime: Runtime,
  file: string | URL,
  timeoutMs: number,
): Promise<ScriptRun> {
  const path = file instanceof URL ? fileURLToPath(file) : resolvePath(ROOT_DIR, file);
  return runBinary(runtime, runtime === "deno" ? ["run", "-A", path] : [path], timeoutMs);
}

/**
 * Runs `node_modules/.bin/<binary> ...args` in the repository (real timers, even under fake
 * time) and resolves with how it ended; killed with SIGKILL after `timeoutMs`.
 */
export function runBinary(
  binary: Runtime,
  args: readonly string[],
  timeoutMs: number,
): Promise<ScriptRun> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // set by `node --test`: a node child would act as its worker
  return new Promise((resolve, reject) => {
    const started = realNow();
    const child = spawn(joinPath(BIN_DIR, binary), args, {
      cwd: ROOT_DIR,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => (stdout += chunk));
    child.stderr.on("data", (chunk: string) => (stderr += chunk));
    const timer = realSetTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (error) => {
      realClearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      realClearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: realNow() - started });
    });
  });
}

/**
 * {@linkcode withPool} for a test running under fake time: the pool is closed with
 * {@linkcode closeUnderFakeTime}, so a test that fails halfway (a create or validation still
 * waiting on a fake timer) reports its failure instead of hanging in close().
 */
export function withClockPool(
  clock: ReturnType<typeof fakeTime>,
  options: PoolOptions,
  fn: (pool: Pool<FakeResource>, factory: FakeFactory) => Promise<void>,
  factory = new FakeFactory(),
): Promise<void> {
  return runPool(options, fn, factory, (pool) => closeUnderFakeTime(pool, clock));
}

/** Makes an Error in this module: a control for probes that watch `new Error()` elsewhere. */
export function makeError(): Error {
  return new Error("probe");
}
