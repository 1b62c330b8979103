/**
 * The record the pool keeps for each resource. It is a list node, so it sits in exactly one of
 * the pool's state lists (idle, active, checking) and moves only through `Pool#move`.
 *
 * @module
 */

import type { Node } from "./_queue.ts";
import type { ResourceInfo } from "./options.ts";
import type { Lease } from "./lease.ts";
import type { Permit } from "./budget.ts";

/** Where a resource is in its life. */
export type ResourceState = "idle" | "active" | "checking" | "destroying" | "gone";

/** A pooled resource and its bookkeeping. Times named `*At` are `Date.now()`; the rest are the pool's monotonic clock. */
export class Resource<T> implements Node<Resource<T>>, ResourceInfo {
  prev: Resource<T> | undefined = undefined;
  next: Resource<T> | undefined = undefined;
  list: import("./_queue.ts").List<Resource<T>> | undefined = undefined;

  state: ResourceState = "checking";
  readonly id: number;
  readonly value: T;
  readonly createdAt: number;
  lastUsedAt: number;
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
  /** The acquirer's stack, kept only with leak detection on. */
  stack: string | undefined = undefined;
  lease: Lease<T> | undefined = undefined;
  /** The budget's permit this resource holds, given back once it is destroyed. */
  permit: Permit | undefined = undefined;

  constructor(id: number, value: T, now: number, expiresAt: number) {
    this.id = id;
    this.value = value;
    this.createdAt = this.lastUsedAt = Date.now();
    this.returnedAt = this.checkedAt = now;
    this.expiresAt = expiresAt;
  }
}
