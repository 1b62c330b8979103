/**
 * Credentials never leak through what the pool makes. The core cannot know which part of a
 * driver's error is secret, so it never copies a foreign error's text into its own: its
 * messages name the cause's kind (`PostgresError 28P01`) and keep the error itself as `cause`
 * (and events carry it by identity), where the application decides what to log. Factories
 * sanitize their drivers' errors (see src/factories/postgres.ts).
 *
 * Checked here with a factory whose every hook fails with an error holding a connection string
 * and a password: pool-made messages, stacks and JSON forms of errors, events serialized with an
 * error replacer, stats and health snapshots, and `String(pool)` / `util.inspect(pool)` /
 * `util.inspect(lease)` never contain the secret.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import {
  AcquireTimeoutError,
  type Factory,
  Pool,
  PoolClosedError,
  PoolError,
  type PoolEvent,
  PoolExhaustedError,
  type PoolOptions,
} from "../mod.ts";
import { closeUnderFakeTime, type fakeTime, isPending, withFakeTime } from "./_helpers.ts";

const PASSWORD = "s3cr3t-pa55";
const DSN = `postgres://user:${PASSWORD}@127.0.0.1:5432/db`;

/** What a careless driver throws: the connection string and the password in its message. */
class DriverError extends Error {
  override name = "PostgresError";
  readonly code = "28P01";
  constructor(what: string) {
    super(`${what}: password authentication failed for ${DSN} (password "${PASSWORD}")`);
  }
}

interface Conn {
  dsn: string;
  password: string;
}

type Clock = ReturnType<typeof fakeTime>;

/** Every error the factory threw: they may hold the secret; nothing the pool made may. */
const foreign = new Set<unknown>();

function fail(what: string): DriverError {
  const error = new DriverError(what);
  foreign.add(error);
  return error;
}

/** A factory whose hooks fail with secret-laden errors while `failing` is set. */
function leakyFactory(): Factory<Conn> & { failing: Set<string> } {
  const failing = new Set<string>();
  return {
    failing,
    create: () => {
      if (failing.has("create")) throw fail("connect");
      return { dsn: DSN, password: PASSWORD };
    },
    validate: () => {
      if (failing.has("validate")) throw fail("ping");
      return true;
    },
    reset: () => {
      if (failing.has("reset")) return Promise.reject(fail("rollback"));
    },
    destroy: () => {
      if (failing.has("destroy")) throw fail("terminate");
    },
    isBroken: () => true,
  };
}

/** Serializes pool-made errors in full; a factory's own errors become a placeholder. */
function replacer(_key: string, value: unknown): unknown {
  if (foreign.has(value)) return "[the factory's own error]";
  if (value instanceof Error) {
    return {
      ...value,
      name: value.name,
      message: value.message,
      stack: value.stack,
      cause: value.cause,
    };
  }
  return value;
}

function assertClean(what: string, text: string | undefined): void {
  assert.ok(typeof text === "string", `${what} is text`);
  assert.ok(!text.includes(PASSWORD), `${what} contains the password: ${text}`);
  assert.ok(!text.includes("user:"), `${what} contains the connection string's userinfo: ${text}`);
}

/** Every way a pool error is commonly turned into text, except following its `cause`. */
function assertCleanError(error: unknown): void {
  assert.ok(error instanceof PoolError, `a PoolError, got ${String(error)}`);
  assertClean("message", error.message);
  assertClean("stack", error.stack);
  assertClean("String(error)", String(error));
  assertClean("JSON.stringify(error)", JSON.stringify(error));
  if (error.stats !== undefined) assertClean("error.stats", JSON.stringify(error.stats));
}

async function drive<T>(clock: Clock, promise: Promise<T>): Promise<T> {
  for (let i = 0; i < 1_000 && await isPending(promise); i++) await clock.tickAsync(50);
  return promise;
}

async function rejection(clock: Clock, promise: Promise<unknown>): Promise<unknown> {
  return await drive(clock, promise).then(
    () => assert.fail("expected a rejection"),
    (error) => error,
  );
}

interface Run {
  pool: Pool<Conn>;
  factory: ReturnType<typeof leakyFactory>;
  clock: Clock;
  events: PoolEvent[];
  iterated: PoolEvent[];
}

async function withLeakyPool(
  options: PoolOptions,
  fn: (run: Run) => Promise<void>,
  failing: string[] = [],
) {
  await withFakeTime(async (clock) => {
    const factory = leakyFactory();
    for (const hook of failing) factory.failing.add(hook);
    const events: PoolEvent[] = [];
    const iterated: PoolEvent[] = [];
    const pool = new Pool(factory, { ...options, onEvent: (e) => events.push(e) });
    const reading = (async () => {
      for await (const e of pool.events({ bufferSize: 10_000 })) iterated.push(e);
    })();
    try {
      await fn({ pool, factory, clock, events, iterated });
    } finally {
      await closeUnderFakeTime(pool, clock);
      await reading;
    }
    assertClean("events", JSON.stringify(events, replacer));
    assertClean("events()", JSON.stringify(iterated, replacer));
    assert.equal(iterated.length, events.length, "the iterator saw every event");
    for (const e of events) {
      if ("error" in e && e.error !== undefined && !(e.error instanceof PoolError)) {
        assert.ok(foreign.has(e.error), `${e.type} carries the factory's error itself`);
      }
    }
    assertClean("stats()", JSON.stringify(pool.stats()));
    assertClean("health()", JSON.stringify(pool.health()));
  });
}

describe("secrets in factory errors", () => {
  it("AcquireTimeoutError names the cause's kind, not its text, and keeps it as cause", async () => {
    await withLeakyPool({ max: 1 }, async ({ pool, factory, clock }) => {
      factory.failing.add("create");
      const error = await rejection(clock, pool.acquire({ timeoutMs: 1_000 }));
      assert.ok(error instanceof AcquireTimeoutError);
      assertCleanError(error);
      assert.ok(foreign.has(error.cause), "the driver's error is the cause, as thrown");
      assert.match(error.message, /timed out after 1000 ms .*PostgresError 28P01/);
    });
  });

  it("ready()'s PoolError names the cause's kind, not its text", async () => {
    await withLeakyPool({ min: 2 }, async ({ pool, clock }) => {
      const error = await rejection(clock, pool.ready({ timeoutMs: 500 }));
      assertCleanError(error);
      assert.ok(foreign.has((error as PoolError).cause));
      assert.match((error as PoolError).message, /not ready after 500 ms: .*PostgresError 28P01/);
    }, ["create"]);
  });

  it("a thrown string is described by its type, never copied", async () => {
    await withLeakyPool({ max: 1 }, async ({ pool, factory, clock }) => {
      const text = `could not connect to ${DSN}`;
      foreign.add(text);
      factory.create = () => Promise.reject(text);
      const error = await rejection(clock, pool.acquire({ timeoutMs: 200 }));
      assertCleanError(error);
      assert.equal((error as PoolError).cause, text);
      assert.match((error as PoolError).message, /a string/);
    });
  });

  it("failing validate, reset and destroy hooks leave no secret in events or stats", async () => {
    await withLeakyPool({ max: 2, validateBypassMs: 0 }, async ({ pool, factory, clock }) => {
      const first = await pool.acquire();
      await first.release();
      factory.failing.add("validate");
      const second = await drive(clock, pool.acquire({ timeoutMs: 1_000 }));
      factory.failing.delete("validate");
      factory.failing.add("reset");
      factory.failing.add("destroy");
      await drive(clock, second.release());
      const third = await drive(clock, pool.acquire({ timeoutMs: 1_000 }));
      await third.destroy();
      assert.ok(pool.stats().validationFailures >= 1);
    });
  });

  it("a use() callback's error is passed through untouched, not wrapped", async () => {
    await withLeakyPool({}, async ({ pool, clock }) => {
      const thrown = fail("query");
      const error = await rejection(clock, pool.use(() => Promise.reject(thrown)));
      assert.equal(error, thrown, "the caller's own error, by identity");
    });
  });

  it("other pool errors (closed, exhausted, create timeout, ended lease) hold no secret", async () => {
    await withLeakyPool(
      { max: 1, maxWaiting: 0, createTimeoutMs: 100 },
      async ({ pool, factory, clock, events }) => {
        const lease = await pool.acquire();
        const exhausted = await rejection(clock, pool.acquire());
        assert.ok(exhausted instanceof PoolExhaustedError);
        assertCleanError(exhausted);
        await lease.release();
        let ended: unknown;
        try {
          void lease.value;
        } catch (error) {
          ended = error;
        }
        assertCleanError(ended);
        await pool.evict();
        factory.create = () => new Promise(() => {});
        const timedOut = await rejection(clock, pool.acquire({ timeoutMs: 1_000 }));
        assertCleanError(timedOut);
        assertCleanError((timedOut as PoolError).cause);
        const createError = events.find((e) => e.type === "create-error");
        assertCleanError(createError?.type === "create-error" ? createError.error : undefined);
        await closeUnderFakeTime(pool, clock);
        const closed = await rejection(clock, pool.acquire());
        assert.ok(closed instanceof PoolClosedError);
        assertCleanError(closed);
      },
    );
  });

  it("String(pool), util.inspect(pool) and util.inspect(lease) show no factory, value or secret", async () => {
    await withLeakyPool({ max: 2 }, async ({ pool }) => {
      const lease = await pool.acquire();
      const views = {
        "String(pool)": String(pool),
        "template": `${pool}`,
        "JSON.stringify(pool)": JSON.stringify(pool),
        "inspect(pool)": inspect(pool, { showHidden: true, depth: Infinity, getters: true }),
        "inspect(lease)": inspect(lease, { showHidden: true, depth: Infinity }),
        "JSON.stringify(lease)": JSON.stringify(lease),
        "JSON.stringify(lease.info)": JSON.stringify(lease.info),
        "inspect(lease.info)": inspect(lease.info, { showHidden: true, depth: Infinity }),
      };
      for (const [what, text] of Object.entries(views)) {
        assertClean(what, text);
        assert.ok(!text.includes("127.0.0.1"), `${what} shows the resource: ${text}`);
      }
      await lease.release();
    });
  });
});
