import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PoolClosedError } from "../mod.ts";
import {
  assertInvariant,
  assertPending,
  countingSignal,
  type FakeResource,
  flush,
  seededRandom,
  withFakeTime,
  withPool,
  withPoolSync,
} from "./_helpers.ts";

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Waits (on microtasks only) until `condition` holds; fails the test if it never does. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (condition()) return;
    await Promise.resolve();
  }
  assert.fail(`never happened: ${what}`);
}

async function collect<R>(iterable: AsyncIterable<R>): Promise<R[]> {
  const out: R[] = [];
  for await (const value of iterable) out.push(value);
  return out;
}

/** Resolves when `signal` aborts; a call that honours its signal. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** A sync source that counts the items it produced and records being closed. */
function countingSource(n: number) {
  const log = { pulls: 0, closed: false };
  function* items(): Generator<number> {
    try {
      for (let i = 0; i < n; i++) {
        log.pulls++;
        yield i;
      }
    } finally {
      log.closed = true;
    }
  }
  return { log, source: items() };
}

/** The async counterpart of {@linkcode countingSource}. */
function countingAsyncSource(n: number) {
  const log = { pulls: 0, closed: false };
  async function* items(): AsyncGenerator<number> {
    try {
      for (let i = 0; i < n; i++) {
        await Promise.resolve();
        log.pulls++;
        yield i;
      }
    } finally {
      log.closed = true;
    }
  }
  return { log, source: items() };
}

describe("Pool.map()", () => {
  it("Pool.map() yields results in source order when the calls finish out of order", async () => {
    await withPool({ max: 4 }, async (pool) => {
      const gates = [0, 1, 2, 3].map(() => deferred());
      let started = 0;
      const results = collect(pool.map([0, 1, 2, 3], async (_conn, i) => {
        started++;
        await gates[i].promise;
        return i * 10;
      }));
      await until(() => started === 4, "all four calls started");
      for (const i of [3, 1, 2, 0]) {
        gates[i].resolve();
        await flush();
      }
      assert.deepEqual(await results, [0, 10, 20, 30]);
      assert.equal(pool.stats().active, 0);
      assertInvariant(pool.stats());
    });
  });

  it("Pool.map() with ordered: false yields each result as soon as its call finishes", async () => {
    await withPool({ max: 4 }, async (pool) => {
      const gates = [0, 1, 2, 3].map(() => deferred());
      let started = 0;
      const results = collect(pool.map([0, 1, 2, 3], async (_conn, i) => {
        started++;
        await gates[i].promise;
        return i;
      }, { ordered: false }));
      await until(() => started === 4, "all four calls started");
      for (const i of [2, 0, 3, 1]) {
        gates[i].resolve();
        await flush();
      }
      assert.deepEqual(await results, [2, 0, 3, 1]);
      assert.equal(pool.stats().active, 0);
    });
  });

  it("Pool.map() calls fn with the leased resource, the item and a live AbortSignal", async () => {
    await withPool({ max: 2 }, async (pool, factory) => {
      const seen: [FakeResource, string, AbortSignal][] = [];
      const results = await collect(pool.map(["a", "b"], (conn, item, signal) => {
        assert.equal(signal.aborted, false);
        assert.equal(conn.destroyed, false);
        assert.ok(pool.stats().active >= 1, "fn runs while the resource is leased");
        seen.push([conn, item, signal]);
        return `${item}${conn.id}`;
      }));
      assert.equal(results.length, 2);
      assert.deepEqual(seen.map(([, item]) => item), ["a", "b"]);
      for (const [conn, item] of seen) {
        assert.ok(factory.created.includes(conn));
        assert.ok(results.includes(`${item}${conn.id}`));
      }
      assert.ok(seen[0][2] instanceof AbortSignal);
    });
  });

  it("Pool.map() never runs more than min(concurrency, max) calls at once", async () => {
    const cases = [
      { max: 3, concurrency: undefined, limit: 3 },
      { max: 5, concurrency: 2, limit: 2 },
      { max: 2, concurrency: 10, limit: 2 },
      { max: 2, concurrency: Infinity, limit: 2 },
      { max: 4, concurrency: 1, limit: 1 },
    ];
    for (const [n, { max, concurrency, limit }] of cases.entries()) {
      await withPool({ max }, async (pool) => {
        const random = seededRandom(n + 1);
        let running = 0;
        let peak = 0;
        let peakActive = 0;
        const items = Array.from({ length: 30 }, (_, i) => i);
        const results = await collect(pool.map(items, async (_conn, i) => {
          running++;
          peak = Math.max(peak, running);
          peakActive = Math.max(peakActive, pool.stats().active);
          const ticks = Math.floor(random() * 10);
          for (let t = 0; t < ticks; t++) await Promise.resolve();
          running--;
          return i;
        }, { concurrency }));
        assert.deepEqual(results, items, `case ${n}`);
        assert.equal(peak, limit, `case ${n}: peak calls at once`);
        assert.ok(peakActive <= limit, `case ${n}: ${peakActive} leases at once`);
        assert.equal(pool.stats().active, 0);
        assertInvariant(pool.stats());
      });
    }
  });

  for (const kind of ["sync", "async"] as const) {
    for (const ordered of [true, false]) {
      it(`Pool.map() reads a ${kind} source only as fast as results are read (ordered: ${ordered})`, async () => {
        await withPool({ max: 10 }, async (pool) => {
          const { log, source } = kind === "sync" ? countingSource(100) : countingAsyncSource(100);
          const mapped = pool.map(source, (_conn, i) => i, { concurrency: 3, ordered });
          await flush();
          assert.equal(log.pulls, 0, "nothing is read before the first read");
          let read = 0;
          for (let step = 0; step < 5; step++) {
            const result = await mapped.next();
            assert.equal(result.done, false);
            read++;
            await flush(50);
            // At most `concurrency` items running or waiting to be read, and no fewer:
            // the map reads ahead up to the limit.
            assert.equal(log.pulls, read + 3, `after ${read} reads`);
            await flush(50);
            assert.equal(log.pulls, read + 3, "no read, no pull");
          }
          await mapped.return?.();
          assert.equal(log.closed, true);
          assert.equal(pool.stats().active, 0);
        });
      });
    }
  }

  it("Pool.map() in order holds results behind a slow item, within the concurrency limit", async () => {
    await withPool({ max: 10 }, async (pool) => {
      const { log, source } = countingSource(10);
      const slow = deferred();
      const finished: number[] = [];
      const results = collect(pool.map(source, async (_conn, i) => {
        if (i === 0) await slow.promise;
        finished.push(i);
        return i;
      }, { concurrency: 3 }));
      await until(() => finished.length === 2, "items 1 and 2 finished");
      await flush(50);
      assert.deepEqual(finished, [1, 2]);
      assert.equal(log.pulls, 3, "no pull past the limit while item 0 is pending");
      slow.resolve();
      assert.deepEqual(await results, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    });
  });

  it("Pool.map() ends with the error fn threw, once every lease is back and the source is closed", async () => {
    await withPool({ max: 4 }, async (pool) => {
      const { log, source } = countingSource(100);
      const failure = new Error("item 2 failed");
      const signals: AbortSignal[] = [];
      const mapped = pool.map(source, async (_conn, i, signal) => {
        signals.push(signal);
        if (i === 2) {
          await until(() => signals.length === 4, "four calls running");
          throw failure;
        }
        return await aborted(signal);
      });
      await assert.rejects(collect(mapped), (error) => error === failure);
      assert.equal(log.closed, true);
      assert.equal(pool.stats().active, 0);
      assert.ok(signals.every((s) => s.aborted), "every call's signal was aborted");
      assert.equal(signals[0].reason, failure);
      assertInvariant(pool.stats());
      assert.deepEqual(await mapped.next(), { value: undefined, done: true });
    });
  });

  it("Pool.map() waits for calls that ignore their signal before reporting an error", async () => {
    await withPool({ max: 2 }, async (pool) => {
      const stubborn = deferred();
      const failure = new Error("boom");
      const mapped = pool.map([0, 1], async (_conn, i) => {
        if (i === 1) throw failure;
        await stubborn.promise; // ignores the signal
        return i;
      });
      const first = mapped.next();
      await assertPending(first);
      assert.equal(pool.stats().active, 1);
      stubborn.resolve();
      await assert.rejects(first, (error) => error === failure);
      assert.equal(pool.stats().active, 0);
    });
  });

  it("Pool.map() ends with the error the source threw, after the calls in flight settle", async () => {
    await withPool({ max: 4 }, async (pool) => {
      const failure = new Error("source broke");
      const signals: AbortSignal[] = [];
      async function* source() {
        yield 1;
        yield 2;
        await until(() => signals.length === 2, "both calls running");
        throw failure;
      }
      const mapped = pool.map(source(), async (_conn, _i, signal) => {
        signals.push(signal);
        return await aborted(signal);
      });
      await assert.rejects(mapped.next(), (error) => error === failure);
      assert.equal(signals.length, 2);
      assert.ok(signals.every((s) => s.aborted));
      assert.equal(pool.stats().active, 0);
    });
  });

  it("Pool.map() ends with a TypeError when the source's next() returns a non-object", async () => {
    await withPool({}, async (pool) => {
      const source = {
        [Symbol.iterator]: () => ({ next: () => 42 as unknown as IteratorResult<number> }),
      };
      await assert.rejects(collect(pool.map(source, () => 0)), TypeError);
    });
  });

  it("Pool.map() on break releases every lease, aborts the calls in flight and closes the source", async () => {
    await withPool({ max: 4 }, async (pool) => {
      const { log, source } = countingSource(100);
      const signals: AbortSignal[] = [];
      let settled = 0;
      for await (
        const value of pool.map(source, async (_conn, i, signal) => {
          signals.push(signal);
          try {
            if (i === 0) return i;
            return await aborted(signal);
          } finally {
            settled++;
          }
        })
      ) {
        assert.equal(value, 0);
        await until(() => signals.length === 4, "four calls running");
        break;
      }
      assert.equal(settled, signals.length, "break waited for every call");
      assert.equal(pool.stats().active, 0);
      assert.equal(log.closed, true);
      assert.ok(signals.every((s) => s.aborted));
      assert.equal((signals[1].reason as Error).name, "AbortError");
      assertInvariant(pool.stats());
    });
  });

  it("Pool.map() return() before the first read closes the source and runs nothing", async () => {
    await withPool({}, async (pool) => {
      let returned = 0;
      let nexts = 0;
      const iterator: Iterator<number> & Iterable<number> = {
        next: () => ({ value: nexts++, done: false }),
        return: () => {
          returned++;
          return { value: undefined, done: true };
        },
        [Symbol.iterator]: () => iterator,
      };
      let calls = 0;
      const mapped = pool.map(iterator, () => calls++);
      assert.deepEqual(await mapped.return?.(), { value: undefined, done: true });
      assert.deepEqual(await mapped.next(), { value: undefined, done: true });
      assert.equal(returned, 1);
      assert.equal(nexts, 0);
      assert.equal(calls, 0);
    });
  });

  it("Pool.map() return() rejects with the error the source's return() threw", async () => {
    await withPool({}, async (pool) => {
      const failure = new Error("cannot close");
      const iterator: Iterator<number> & Iterable<number> = {
        next: () => ({ value: 1, done: false }),
        return: () => {
          throw failure;
        },
        [Symbol.iterator]: () => iterator,
      };
      const mapped = pool.map(iterator, (_c, n) => n);
      assert.deepEqual(await mapped.next(), { value: 1, done: false });
      await assert.rejects(mapped.return?.() ?? Promise.resolve(), (error) => error === failure);
      assert.equal(pool.stats().active, 0);
      assert.deepEqual(await mapped.next(), { value: undefined, done: true });
    });
  });

  it("Pool.map() return() while a read is pending resolves that read as done", async () => {
    await withPool({ max: 1 }, async (pool) => {
      const mapped = pool.map([1, 2], (_conn, _i, signal) => aborted(signal));
      const pending = mapped.next();
      await flush();
      await mapped.return?.();
      assert.deepEqual(await pending, { value: undefined, done: true });
      assert.equal(pool.stats().active, 0);
    });
  });

  it("Pool.map() ends with signal.reason when aborted, releasing every lease and its listener", async () => {
    await withPool({ max: 3 }, async (pool) => {
      const { controller, signal, listeners } = countingSignal();
      const { log, source } = countingSource(100);
      const signals: AbortSignal[] = [];
      const mapped = pool.map(source, (_conn, _i, s) => {
        signals.push(s);
        return aborted(s);
      }, { signal });
      const pending = mapped.next();
      await until(() => signals.length === 3, "three calls running");
      assert.equal(listeners(), 1);
      const reason = new Error("stop");
      controller.abort(reason);
      await assert.rejects(pending, (error) => error === reason);
      assert.ok(signals.every((s) => s.aborted && s.reason === reason));
      assert.equal(pool.stats().active, 0);
      assert.equal(log.closed, true);
      assert.equal(listeners(), 0);
      assertInvariant(pool.stats());
    });
  });

  it("Pool.map() with an already aborted signal rejects the first read and opens nothing", async () => {
    await withPool({}, async (pool) => {
      const reason = new Error("too late");
      let opened = false;
      const source = {
        [Symbol.iterator]() {
          opened = true;
          return [1][Symbol.iterator]();
        },
      };
      let calls = 0;
      const mapped = pool.map(source, () => calls++, { signal: AbortSignal.abort(reason) });
      await assert.rejects(mapped.next(), (error) => error === reason);
      assert.deepEqual(await mapped.next(), { value: undefined, done: true });
      assert.equal(opened, false);
      assert.equal(calls, 0);
    });
  });

  it("Pool.map() closes a generator that aborted the signal from inside its own next()", async () => {
    await withPool({}, async (pool) => {
      const controller = new AbortController();
      const reason = new Error("stop");
      let finalized = false;
      function* source() {
        try {
          controller.abort(reason); // while the generator runs: it cannot be closed right now
          yield 1;
          yield 2;
        } finally {
          finalized = true;
        }
      }
      let calls = 0;
      const mapped = pool.map(source(), () => calls++, { signal: controller.signal });
      await assert.rejects(mapped.next(), (error) => error === reason);
      assert.equal(finalized, true, "its finally ran: return() was called once it could be");
      assert.equal(calls, 0);
      assert.equal(pool.stats().active, 0);
    });
  });

  it("Pool.map() removes its abort listener whether it completes, breaks or fails", async () => {
    await withPool({ max: 2 }, async (pool) => {
      const done = countingSignal();
      await collect(pool.map([1, 2, 3], (_c, i) => i, { signal: done.signal }));
      assert.equal(done.listeners(), 0, "after completing");

      const broken = countingSignal();
      for await (const _ of pool.map([1, 2, 3], (_c, i) => i, { signal: broken.signal })) break;
      assert.equal(broken.listeners(), 0, "after break");

      const failed = countingSignal();
      const thrower = pool.map([1], () => {
        throw new Error("x");
      }, { signal: failed.signal });
      await assert.rejects(collect(thrower));
      assert.equal(failed.listeners(), 0, "after an error");
      assert.equal(pool.stats().active, 0);
    });
  });

  it("Pool.map() leaves no timer behind", async () => {
    await withFakeTime(async (clock) => {
      await withPool({ max: 2 }, async (pool) => {
        await pool.use(() => {}); // the reaper is running from here on
        const before = clock.countTimers();
        await collect(pool.map([1, 2, 3, 4, 5], (_c, i) => Promise.resolve(i)));
        for await (const _ of pool.map([1, 2, 3], (_c, i) => i)) break;
        assert.equal(clock.countTimers(), before);
      });
    });
  });

  it("Pool.map() accepts arrays, Sets, strings, generators and (async) iterators", async () => {
    await withPool({ max: 3 }, async (pool) => {
      async function* asyncGen() {
        yield 1;
        yield 2;
      }
      let i = 0;
      const asyncIterator: AsyncIterable<number> = {
        [Symbol.asyncIterator]: () => ({
          next: () =>
            Promise.resolve(i < 2 ? { value: ++i, done: false } : { value: undefined, done: true }),
        }),
      };
      const double = (_c: FakeResource, n: number) => n * 2;
      assert.deepEqual(await collect(pool.map([1, 2], double)), [2, 4]);
      assert.deepEqual(await collect(pool.map(new Set([1, 2]), double)), [2, 4]);
      assert.deepEqual(await collect(pool.map("ab", (_c, s) => s.toUpperCase())), ["A", "B"]);
      assert.deepEqual(await collect(pool.map([1, 2].values(), double)), [2, 4]);
      assert.deepEqual(await collect(pool.map(asyncGen(), double)), [2, 4]);
      assert.deepEqual(await collect(pool.map(asyncIterator, double)), [2, 4]);
      assert.deepEqual(await collect(pool.map([], double)), []);
      assert.equal(pool.stats().active, 0);
    });
  });

  it("Pool.map() hands results to concurrent next() calls in order", async () => {
    await withPool({ max: 3 }, async (pool) => {
      const mapped = pool.map([1, 2, 3], (_c, n) => Promise.resolve(n));
      const reads = [mapped.next(), mapped.next(), mapped.next(), mapped.next()];
      assert.deepEqual(await Promise.all(reads), [
        { value: 1, done: false },
        { value: 2, done: false },
        { value: 3, done: false },
        { value: undefined, done: true },
      ]);
    });
  });

  it("Pool.map() ends with PoolClosedError on a closed pool", async () => {
    await withPool({}, async (pool) => {
      await pool.close();
      await assert.rejects(collect(pool.map([1], () => 1)), PoolClosedError);
    });
  });

  it("Pool.map() destroys the resource when fn throws an error isBroken() recognises", async () => {
    await withPool({ max: 1 }, async (pool, factory) => {
      Object.assign(factory, {
        isBroken: (_r: FakeResource, error: unknown) => (error as Error).message === "gone",
      });
      await assert.rejects(collect(pool.map([1], () => {
        throw new Error("gone");
      })));
      assert.equal(factory.destroyed.length, 1);
      assert.equal(pool.stats().active, 0);
    });
  });

  it("Pool.map() is its own async iterator", async () => {
    await withPool({}, async (pool) => {
      const mapped = pool.map([1], (_c, n) => n);
      assert.equal(mapped[Symbol.asyncIterator](), mapped);
      await mapped.return?.();
    });
  });

  it("Pool.map() validates its arguments at once", async () => {
    await withPoolSync({}, (pool) => {
      const fn = () => 0;
      for (const source of [null, undefined, 42, {}]) {
        assert.throws(() => pool.map(source as unknown as number[], fn), TypeError);
      }
      assert.throws(() => pool.map([1], "fn" as unknown as typeof fn), TypeError);
      assert.throws(() => pool.map([1], fn, null as unknown as undefined), TypeError);
      for (const concurrency of [0, -1, 1.5, NaN]) {
        assert.throws(() => pool.map([1], fn, { concurrency }), RangeError, String(concurrency));
      }
      assert.throws(() => pool.map([1], fn, { concurrency: "2" as unknown as number }), TypeError);
      assert.throws(() => pool.map([1], fn, { ordered: "yes" as unknown as boolean }), TypeError);
      assert.throws(() => pool.map([1], fn, { signal: {} as AbortSignal }), TypeError);
    });
  });
});
