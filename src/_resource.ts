/**
 * The record the pool keeps for each resource. Its state changes only through `Pool#move`; it
 * is a list node so that, while idle, it sits in the pool's idle list.
 *
 * @module
 */

import type { Node } from "./_queue.ts";
import type { ResourceInfo } from "./options.ts";
import type { Lease } from "./lease.ts";
import type { Permit } from "./budget.ts";

/** Where a resource is in its life. */
export type ResourceState = "new" | "idle" | "active" | "checking" | "destroying" | "gone";

/** A pooled resource and its bookkeeping. Times named `*At` are `Date.now()`; the rest are the pool's monotonic clock. */
export class Resource<T> implements Node<Resource<T>>, ResourceInfo {
  prev: Resource<T> | undefined = undefined;
  next: Resource<T> | undefined = undefined;
  list: import("./_queue.ts").List<Resource<T>> | undefined = undefined;

  state: ResourceState = "new";
  readonly id: number;
  readonly value: T;
  readonly createdAt: number;
  /** Monotonic time of creation: with `createdAt`, turns monotonic times into wall-clock ones. */
  readonly bornAt: number;
  uses = 0;
  /** Monotonic time after which the resource is retired (its jittered lifetime). */
  readonly expiresAt: number;
  /** Monotonic time it was last returned by a user (or created): the idle timeout counts from here. */
  returnedAt: number;
  /** Monotonic time it was last returned, validated or created: validation and keepalive count from here. */
  checkedAt: number;
  /** Monotonic time of the current lease. */
  acquiredAt = 0;
  /** True while the resource came straight from idle (an acquire it serves is a hit). */
  fromIdle = false;
  /** Marked by `evict()`: destroyed instead of reused. */
  evicted = false;
  /** The leak event was emitted for the current lease. */
  leakReported = false;
  /** Where the current lease was acquired, kept only with leak detection on; its stack is read
   * (the costly part) only if a leak is reported. */
  origin: Error | undefined = undefined;
  lease: Lease<T> | undefined = undefined;
  /** The budget's permit this resource holds, given back once it is destroyed. */
  permit: Permit | undefined = undefined;

  constructor(id: number, value: T, now: number, expiresAt: number) {
    this.id = id;
    this.value = value;
    this.createdAt = Date.now();
    this.bornAt = this.returnedAt = this.checkedAt = now;
    this.expiresAt = expiresAt;
  }

  /** When it was last handed out, in `Date.now()` milliseconds (derived: no clock read per lease). */
  get lastUsedAt(): number {
    return this.uses === 0
      ? this.createdAt
      : Math.round(this.createdAt + this.acquiredAt - this.bornAt);
  }
}
