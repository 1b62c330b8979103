/**
 * An AbortSignal that counts its listeners, shared by the tests and scripts/soak.ts. It imports
 * nothing, so a script can use it without pulling in node:test or the test helpers.
 *
 * @module
 */

/**
 * A real AbortSignal whose `addEventListener` / `removeEventListener` are instrumented, so a
 * test can see how many listeners are still attached (`listeners()`).
 */
export function countingSignal(): {
  controller: AbortController;
  signal: AbortSignal;
  listeners(): number;
} {
  const controller = new AbortController();
  const signal = controller.signal;
  const live = new Set<unknown>();
  const wrappers = new Map<unknown, EventListener>();
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ) => {
    if (listener === null) return;
    live.add(listener);
    const once = typeof options === "object" && options.once === true;
    // A `once` listener is gone after it ran: forget it then, too.
    const tracked: EventListener = (event) => {
      if (once) live.delete(listener);
      if (typeof listener === "function") listener.call(signal, event);
      else listener.handleEvent(event);
    };
    wrappers.set(listener, tracked);
    add(type, tracked, options);
  };
  signal.removeEventListener = (
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ) => {
    if (listener === null) return;
    live.delete(listener);
    const tracked = wrappers.get(listener);
    wrappers.delete(listener);
    if (tracked) remove(type, tracked, options);
  };
  return { controller, signal, listeners: () => live.size };
}
