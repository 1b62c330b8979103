/**
 * Shared test helpers: a scripted fake factory, pending-promise checks, a pool wrapper that
 * always closes, fake timers, and the pool's accounting invariant.
 */
import assert from "node:assert/strict";
import * as FakeTimers from "@sinonjs/fake-timers";
import { type Factory, Pool, type PoolOptions, type PoolStats } from "../mod.ts";

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

  reset(r: FakeResource): void {
    this.resets.push(r);
    if (this.resetThrows) throw new Error("reset failed");
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
      setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        if ("failAfterMs" in step) reject(new Error(message));
        else resolve();
      }, ms);
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
  assert.ok(s.total + s.creating + s.destroying <= s.max, `footprint above max: ${JSON.stringify(s)}`);
}

/** Runs `fn` with a fresh pool over a fresh FakeFactory; always closes the pool. */
export async function withPool(
  options: PoolOptions,
  fn: (pool: Pool<FakeResource>, factory: FakeFactory) => Promise<void>,
  factory = new FakeFactory(),
): Promise<void> {
  const pool = new Pool(factory, options);
  try {
    await fn(pool, factory);
  } finally {
    await pool.close({ timeoutMs: 0 });
  }
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
