/**
 * A lease: one resource lent out by a pool until it is released. Leases are async-disposable,
 * so `await using` gives the resource back when the scope ends, however it ends.
 *
 * @module
 */

import { PoolError } from "./errors.ts";
import type { ResourceInfo } from "./options.ts";
import type { Resource } from "./_resource.ts";

/** How a lease hands its resource back: implemented by the pool, one function per pool. */
export type GiveBack<T> = (resource: Resource<T>, broken: boolean) => Promise<void>;

const RESOLVED: Promise<void> = Promise.resolve();

/** Ends a lease without giving its resource back (the pool destroyed it); internal. */
export const revoke: unique symbol = Symbol("edgepool.revoke");

/**
 * A resource on loan from a {@linkcode Pool}. Read it with `value`; give it back with
 * `release()` (or let `await using` do it), or `destroy()` it when it is broken. Only the first
 * `release()` or `destroy()` counts; later calls are no-ops.
 *
 * @example Scoped lease
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({ queries: 0 }) });
 * {
 *   await using conn = await pool.acquire();
 *   conn.value.queries++;
 * } // released here
 * assert.equal(pool.stats().idle, 1);
 * ```
 */
export class Lease<T> implements AsyncDisposable {
  #resource: Resource<T>;
  #giveBack: GiveBack<T>;
  #done = false;

  /** Made by the pool; user code receives leases from `pool.acquire()`. */
  constructor(resource: Resource<T>, giveBack: GiveBack<T>) {
    this.#resource = resource;
    this.#giveBack = giveBack;
  }

  // A member borrowed onto another object (`Lease.prototype.release.call(x)`) fails with a
  // TypeError that names it, before touching anything.
  static #check(lease: unknown, what: string): void {
    if (typeof lease === "object" && lease !== null && #done in lease) return;
    const received = lease === null
      ? "null"
      : typeof lease === "object"
      ? "an object"
      : typeof lease === "function"
      ? "a function"
      : typeof lease === "string"
      ? JSON.stringify(lease)
      : String(lease);
    throw new TypeError(`Lease.${what} needs a lease from pool.acquire(), received ${received}`);
  }

  /** The resource. Reading it after the lease ended throws a {@linkcode PoolError}. */
  get value(): T {
    Lease.#check(this, "value");
    if (this.#done) {
      throw new PoolError(
        `cannot read lease.value: the lease on resource ${this.#resource.id} has ended`,
      );
    }
    return this.#resource.value;
  }

  /** Facts about the resource: id, creation time, last use, uses. */
  get info(): ResourceInfo {
    Lease.#check(this, "info");
    // A copy: the record itself links into the pool's lists and to the resource's next lease.
    const r = this.#resource;
    return { id: r.id, createdAt: r.createdAt, lastUsedAt: r.lastUsedAt, uses: r.uses };
  }

  /** True once the lease was released, destroyed, or revoked by a closing pool. */
  get released(): boolean {
    Lease.#check(this, "released");
    return this.#done;
  }

  /** Gives the resource back for reuse; resolves once the pool took it back. Never rejects. */
  release(): Promise<void> {
    Lease.#check(this, "release()");
    if (this.#done) return RESOLVED;
    this.#done = true;
    return this.#giveBack(this.#resource, false);
  }

  /** Gives the resource back to be destroyed, not reused (e.g. after it errored). Never rejects. */
  destroy(): Promise<void> {
    Lease.#check(this, "destroy()");
    if (this.#done) return RESOLVED;
    this.#done = true;
    return this.#giveBack(this.#resource, true);
  }

  /** Same as {@linkcode Lease.release}: what `await using` calls. */
  [Symbol.asyncDispose](): Promise<void> {
    Lease.#check(this, "[Symbol.asyncDispose]()");
    return this.release();
  }

  /** @internal */
  [revoke](): void {
    this.#done = true;
  }
}
