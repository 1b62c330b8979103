/**
 * Whether a value returned by user code is a promise or another thenable, to be awaited (or
 * have its rejection handled) rather than taken as it is.
 *
 * @module
 */

/** True for a promise or any object with a `then` method. */
export function isThenable<V>(value: V | PromiseLike<V>): value is PromiseLike<V> {
  return typeof (value as PromiseLike<V> | null)?.then === "function";
}
