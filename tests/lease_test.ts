import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lease, Pool, PoolError } from "../mod.ts";
import {
  assertInvariant,
  assertPending,
  FakeFactory,
  type FakeResource,
  flush,
  withClockPool,
  withFakeTime,
  withPool,
} from "./_helpers.ts";

describe("Lease", () => {
  it("Lease.value is the created resource while the lease is held", async () => {
    await withPool({}, async (pool, factory) => {
      const lease = await pool.acquire();
      assert.ok(lease instanceof Lease);
      assert.equal(lease.value, factory.created[0]);
      assert.equal(lease.released, false);
      assert.equal(lease.info.uses, 1);
      assert.equal(typeof lease.info.id, "number");
      await lease.release();
    });
  });

  it("Lease.value throws a PoolError after release()", async () => {
    await withPool({}, async (pool) => {
      const lease = await pool.acquire();
      await lease.release();
      assert.equal(lease.released, true);
      assert.throws(() => lease.value, PoolError);
    });
  });

  it("Lease.value throws a PoolError after destroy()", async () => {
    await withPool({}, async (pool) => {
      const lease = await pool.acquire();
      await lease.destroy();
      assert.equal(lease.released, true);
      assert.throws(() => lease.value, PoolError);
    });
  });

  it("Lease.value throws as soon as release() is called, before it resolves", async () => {
    await withPool({}, async (pool) => {
      const lease = await pool.acquire();
      const releasing = lease.release();
      assert.throws(() => lease.value, PoolError);
      await releasing;
    });
  });

  it("Lease.release() twice gives the resource back once and counts one release", async () => {
    await withPool({}, async (pool, factory) => {
      const lease = await pool.acquire();
      await lease.release();
      await lease.release();
      const s = pool.stats();
      assert.equal(s.released, 1);
      assert.equal(s.idle, 1);
      assert.equal(factory.resets.length, 1, "reset ran once");
      assertInvariant(s);
    });
  });

  it("Lease.release() of an ended lease leaves the resource's next lease alone", async () => {
    await withPool({ max: 1 }, async (pool) => {
      const first = await pool.acquire();
      await first.release();
      const second = await pool.acquire();
      assert.equal(second.info.id, first.info.id, "same resource, new lease");
      await first.release();
      await first.destroy();
      assert.equal(second.released, false);
      assert.equal(second.value.destroyed, false);
      const s = pool.stats();
      assert.deepEqual([s.active, s.idle, s.released, s.destroyed], [1, 0, 1, 0]);
      await second.release();
    });
  });

  it("Lease.destroy() after release() is a no-op", async () => {
    await withPool({}, async (pool, factory) => {
      const lease = await pool.acquire();
      await lease.release();
      await lease.destroy();
      const s = pool.stats();
      assert.deepEqual([s.idle, s.destroyed, s.released], [1, 0, 1]);
      assert.equal(factory.destroyed.length, 0);
    });
  });

  it("Lease.release() after destroy() is a no-op", async () => {
    await withPool({}, async (pool, factory) => {
      const lease = await pool.acquire();
      await lease.destroy();
      await lease.release();
      const s = pool.stats();
      assert.deepEqual([s.idle, s.destroyed, s.released], [0, 1, 1]);
      assert.equal(factory.destroyed.length, 1);
      assert.equal(factory.resets.length, 0);
      assertInvariant(s);
    });
  });

  it("Lease.destroy() destroys the resource instead of reusing it", async () => {
    await withPool({ max: 1 }, async (pool, factory) => {
      const lease = await pool.acquire();
      const value = lease.value;
      await lease.destroy();
      assert.equal(value.destroyed, true);
      assert.deepEqual(factory.destroyed, [value]);
      const next = await pool.acquire();
      assert.notEqual(next.value, value);
      assert.notEqual(next.info.id, lease.info.id);
      assert.equal(pool.stats().created, 2);
      assertInvariant(pool.stats());
      await next.release();
    });
  });

  it("Lease.destroy() frees the slot for a waiter, which gets a new resource", async () => {
    await withPool({ max: 1 }, async (pool, factory) => {
      const lease = await pool.acquire();
      const waiting = pool.acquire({ timeoutMs: Infinity });
      await assertPending(waiting);
      await lease.destroy();
      const next = await waiting;
      assert.equal(next.value, factory.created[1]);
      assert.equal(factory.alive, 1);
      await next.release();
    });
  });

  it("Lease.release() resolves once the pool took the resource back (after an async reset)", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.reset = async (r: FakeResource) => {
        factory.resets.push(r);
        await new Promise((resolve) => setTimeout(resolve, 100));
      };
      await withClockPool(clock, {}, async (pool) => {
        const lease = await pool.acquire();
        const releasing = lease.release();
        await assertPending(releasing);
        assert.equal(pool.stats().validating, 1, "being reset");
        await clock.tickAsync(100);
        await releasing;
        assert.equal(pool.stats().idle, 1);
      }, factory);
    });
  });

  it("Lease.release() never rejects, even when reset() and destroy() throw", async () => {
    await withPool({}, async (pool, factory) => {
      factory.resetThrows = true;
      factory.destroyThrows = true;
      const lease = await pool.acquire();
      await lease.release(); // reset throws → destroyed, and destroy throws too
      const s = pool.stats();
      assert.deepEqual([s.idle, s.active, s.destroyed, s.destroying], [0, 0, 1, 0]);
      assertInvariant(s);
      const other = await pool.acquire();
      await other.destroy();
      assert.equal(pool.stats().destroyed, 2);
    });
  });

  it("Lease.info counts the leases a resource served", async () => {
    await withPool({ max: 1 }, async (pool) => {
      for (let uses = 1; uses <= 3; uses++) {
        const lease = await pool.acquire();
        assert.equal(lease.info.uses, uses);
        assert.ok(lease.info.lastUsedAt >= lease.info.createdAt);
        await lease.release();
      }
    });
  });

  it("Lease[Symbol.asyncDispose]() releases like release()", async () => {
    await withPool({}, async (pool) => {
      const lease = await pool.acquire();
      await lease[Symbol.asyncDispose]();
      await lease[Symbol.asyncDispose]();
      assert.equal(lease.released, true);
      assert.deepEqual([pool.stats().idle, pool.stats().released], [1, 1]);
    });
  });

  it("await using releases the lease at the end of the scope", async () => {
    await withPool({}, async (pool) => {
      let inside: Lease<FakeResource> | undefined;
      {
        await using lease = await pool.acquire();
        inside = lease;
        assert.equal(pool.stats().active, 1);
        assert.equal(lease.value.destroyed, false);
      }
      assert.equal(inside.released, true);
      const s = pool.stats();
      assert.deepEqual([s.active, s.idle, s.released], [0, 1, 1]);
    });
  });

  it("await using releases the lease when the scope throws, and the error propagates", async () => {
    await withPool({}, async (pool, factory) => {
      const failure = new Error("query failed");
      let inside: Lease<FakeResource> | undefined;
      await assert.rejects(
        (async () => {
          await using lease = await pool.acquire();
          inside = lease;
          throw failure;
        })(),
        (error) => error === failure,
      );
      assert.equal(inside?.released, true);
      const s = pool.stats();
      assert.deepEqual([s.active, s.idle, s.released, s.destroyed], [0, 1, 1, 0]);
      assert.equal(factory.destroyed.length, 0, "released for reuse, not destroyed");
    });
  });

  it("await using after an explicit release() does not release twice", async () => {
    await withPool({}, async (pool) => {
      {
        await using lease = await pool.acquire();
        await lease.release();
      }
      assert.equal(pool.stats().released, 1);
    });
  });

  it("await using on a pool closes it at the end of the scope", async () => {
    const factory = new FakeFactory();
    let outer: Pool<FakeResource> | undefined;
    {
      await using pool = new Pool(factory, { min: 2 });
      outer = pool;
      await pool.ready();
    }
    assert.equal(outer.closed, true);
    assert.equal(factory.alive, 0);
    assert.equal(factory.destroyed.length, 2);
  });

  it("Lease of a pool that closed past its timeout is revoked: value throws, release is a no-op", async () => {
    const factory = new FakeFactory();
    const pool = new Pool(factory);
    const lease = await pool.acquire();
    await pool.close({ timeoutMs: 0 });
    assert.equal(lease.released, true);
    assert.throws(() => lease.value, PoolError);
    await lease.release();
    await lease.destroy();
    await flush();
    const s = pool.stats();
    // A revoked lease counts as released once (at revocation), never again.
    assert.deepEqual([s.released, s.destroyed, s.total], [1, 1, 0]);
    assert.equal(factory.destroyed.length, 1);
  });
});
