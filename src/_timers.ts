/**
 * Timers looked up on `globalThis` at call time, so that fake timers installed after this
 * module loaded still drive the pool, and unref'd where the runtime allows it, so that a pool
 * with nothing to do never keeps a process alive.
 *
 * @module
 */

/** An opaque timer handle: a number on Deno and in browsers; on Node and Bun an object. */
export type TimerHandle = unknown;

interface Unrefable {
  unref(): unknown;
  ref?(): unknown;
}

// Deno returns numeric timer ids and exposes unrefTimer(id) on its namespace object; reached
// by feature detection so the core carries no Deno types.
const denoNamespace = (globalThis as Record<string, unknown>)["Deno"] as
  | { unrefTimer?: (id: number) => void; refTimer?: (id: number) => void }
  | undefined;

function unref(handle: TimerHandle): void {
  if (typeof handle === "object" && handle !== null && "unref" in handle) {
    (handle as Unrefable).unref();
  } else if (typeof handle === "number" && denoNamespace?.unrefTimer) {
    denoNamespace.unrefTimer(handle);
  }
}

/** Makes an unref'd timer from {@linkcode after} keep the process alive again. */
export function keepAlive(handle: TimerHandle): void {
  if (typeof handle === "object" && handle !== null && "ref" in handle) {
    (handle as Unrefable).ref?.();
  } else if (typeof handle === "number" && denoNamespace?.refTimer) {
    denoNamespace.refTimer(handle);
  }
}

/** Runs `fn` once after `ms`; an unref'd timer does not keep the process alive. */
export function after(ms: number, fn: () => void, unrefTimer = false): TimerHandle {
  const handle = globalThis.setTimeout(fn, ms);
  if (unrefTimer) unref(handle);
  return handle;
}

/** Runs `fn` every `ms`, always unref'd: intervals are housekeeping, never work. */
export function every(ms: number, fn: () => void): TimerHandle {
  const handle = globalThis.setInterval(fn, ms);
  unref(handle);
  return handle;
}

/** Cancels a timer from {@linkcode after}. */
export function cancelAfter(handle: TimerHandle): void {
  globalThis.clearTimeout(handle as number);
}

/** Cancels a timer from {@linkcode every}. */
export function cancelEvery(handle: TimerHandle): void {
  globalThis.clearInterval(handle as number);
}

/** Milliseconds on the monotonic clock. */
export function monotonicNow(): number {
  return globalThis.performance.now();
}

/**
 * Whether timers may be set here and now. Cloudflare Workers refuse them at global scope,
 * where a pool may well be constructed; such a pool then starts its work on first use.
 */
export function timersAllowed(): boolean {
  try {
    cancelAfter(after(0, () => {}));
    return true;
  } catch {
    return false;
  }
}
