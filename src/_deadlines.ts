/**
 * Deadlines of the pool's own work: creates, validations, resets and destroys. Each has a
 * timer, and is also checked whenever the pool runs (`sweep`), because a timer is not always
 * kept: Cloudflare Workers cancel every timer a request set when that request ends. A
 * deadline that passed unnoticed is then enforced by the next acquire instead of holding its
 * slot for good. All deadlines of one kind have the same length, so each kind's list is in
 * deadline order and a sweep looks at its heads only: O(1) when nothing is overdue.
 *
 * @module
 */

import { List, type Node } from "./_queue.ts";
import { after, cancelAfter, type TimerHandle } from "./_timers.ts";

/** One armed deadline; `expire` runs once, from its timer or from a sweep. */
export class Deadline implements Node<Deadline> {
  prev: Deadline | undefined = undefined;
  next: Deadline | undefined = undefined;
  list: List<Deadline> | undefined = undefined;
  readonly at: number;
  readonly expire: () => void;
  timer: TimerHandle | undefined = undefined;

  constructor(at: number, expire: () => void) {
    this.at = at;
    this.expire = expire;
  }
}

/** The deadlines of one kind of operation, all `ms` long. */
export class DeadlineList {
  readonly #list = new List<Deadline>();
  readonly #ms: number;

  constructor(ms: number) {
    this.#ms = ms;
  }

  /** When the earliest armed deadline falls (`Infinity` when none is armed). */
  get earliest(): number {
    return this.#list.head?.at ?? Infinity;
  }

  /** How many are armed. */
  get size(): number {
    return this.#list.size;
  }

  /** Arms a deadline `ms` after `now`; none when `ms` is `Infinity`. */
  arm(now: number, expire: () => void): Deadline | undefined {
    if (this.#ms === Infinity) return undefined;
    const d = new Deadline(now + this.#ms, expire);
    d.timer = after(this.#ms, () => this.#fire(d));
    this.#list.push(d);
    return d;
  }

  /** Disarms `d` (the operation settled in time). */
  disarm(d: Deadline | undefined): void {
    if (d === undefined || !this.#list.remove(d)) return;
    cancelAfter(d.timer);
  }

  /** Expires every deadline at or before `now`. */
  sweep(now: number): void {
    let d: Deadline | undefined;
    while ((d = this.#list.head) !== undefined && d.at <= now) this.#fire(d);
  }

  #fire(d: Deadline): void {
    if (d.list !== this.#list) return;
    this.disarm(d);
    d.expire();
  }
}
