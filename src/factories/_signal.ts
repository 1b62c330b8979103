/**
 * Helpers shared by the factories.
 *
 * @module
 */

/**
 * Settles with `work`, or rejects with `signal.reason` as soon as `signal` aborts (the work
 * itself goes on; the caller decides what to do with a late result). Leaves no listener behind.
 */
export function raceSignal<R>(work: PromiseLike<R>, signal: AbortSignal): Promise<R> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<R>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
