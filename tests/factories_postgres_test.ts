/**
 * postgresFactory with a scripted fake driver: options, the client options it forces, abort,
 * disconnects, reset modes and redaction. The real server is in tests/integration/.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inspect } from "node:util";
import { Pool } from "../mod.ts";
import { isConnectionError, postgresFactory } from "../src/factories/postgres.ts";

const PASSWORD = "hunter2-very-secret";
const URL = `postgres://app:${PASSWORD}@db.example:5432/app`;

interface FakeClientOptions {
  max?: number;
  idle_timeout?: number;
  max_lifetime?: number | null;
  connect_timeout?: number;
  prepare?: boolean;
  onnotice?: (notice: unknown) => void;
  onclose?: (id: number) => void;
  [key: string]: unknown;
}

/** A stand-in for a postgres.js client: records queries, answers as scripted. */
class FakeSql {
  readonly url: string | undefined;
  readonly options: FakeClientOptions;
  queries: string[] = [];
  ends: { timeout?: number }[] = [];
  /** How the next query settles: "ok", an error to reject with, or "hang". */
  next: "ok" | "hang" | Error = "ok";
  constructor(url: string | undefined, options: FakeClientOptions) {
    this.url = url;
    this.options = options;
  }
  unsafe(query: string): Promise<unknown[]> {
    this.queries.push(query);
    const next = this.next;
    if (next === "hang") return new Promise(() => {});
    return next === "ok" ? Promise.resolve([]) : Promise.reject(next);
  }
  end(options?: { timeout?: number }): Promise<void> {
    this.ends.push(options ?? {});
    return Promise.resolve();
  }
  /** What postgres.js does when the socket closes. */
  dropConnection(): void {
    this.options.onclose?.(1);
  }
}

function fakeDriver(script: (sql: FakeSql) => void = () => {}) {
  const made: FakeSql[] = [];
  const driver = (url: string | FakeClientOptions, options?: FakeClientOptions): FakeSql => {
    const sql = typeof url === "string"
      ? new FakeSql(url, options ?? {})
      : new FakeSql(undefined, url);
    made.push(sql);
    script(sql);
    return sql;
  };
  return { driver: driver as (url: string, options?: FakeClientOptions) => FakeSql, made };
}

const signal = () => new AbortController().signal;
const info = { id: 1, createdAt: 0, lastUsedAt: 0, uses: 0 };

describe("postgresFactory()", () => {
  it("rejects a missing driver, a bad connection and bad options", () => {
    const { driver } = fakeDriver();
    assert.throws(() => postgresFactory(undefined as never, URL), TypeError);
    assert.throws(() => postgresFactory(driver, 42 as never), TypeError);
    assert.throws(() => postgresFactory(driver, URL, { reset: "nope" as never }), TypeError);
    assert.throws(() => postgresFactory(driver, URL, { validateQuery: " " }), TypeError);
    assert.throws(
      () => postgresFactory(driver, URL, { reset: "none", resetQuery: "select 1" }),
      TypeError,
    );
    assert.throws(() => postgresFactory(driver, URL, { onDisconnect: 1 as never }), TypeError);
    for (const v of [-1, NaN, Infinity]) {
      assert.throws(() => postgresFactory(driver, URL, { connectTimeoutMs: v }), RangeError);
      assert.throws(() => postgresFactory(driver, URL, { endTimeoutMs: v }), RangeError);
    }
    // Ending at once is a choice; connecting or answering in no time is not.
    postgresFactory(driver, URL, { endTimeoutMs: 0 });
    for (const option of ["connectTimeoutMs", "pipelinedResetTimeoutMs"]) {
      assert.throws(() => postgresFactory(driver, URL, { [option]: 0 }), {
        name: "RangeError",
        message: new RegExp(`${option} must be a finite duration > 0 ms, received 0`),
      });
    }
    assert.throws(() => postgresFactory(driver, URL, { endTimeoutMs: "1" as never }), TypeError);
  });

  it("create() makes a one-connection client with its own recycling off and connects", async () => {
    const { driver, made } = fakeDriver();
    const f = postgresFactory(driver, URL, { connectTimeoutMs: 2_500 });
    const sql = await f.create(signal());
    assert.equal(made.length, 1);
    assert.equal(sql.url, URL);
    assert.equal(sql.options.max, 1);
    assert.equal(sql.options.idle_timeout, 0);
    assert.equal(sql.options.max_lifetime, null);
    assert.equal(sql.options.connect_timeout, 2.5);
    assert.equal(typeof sql.options.onnotice, "function");
    assert.deepEqual(sql.queries, ["select 1"]);
  });

  it("create() keeps the user's client options but overrides the pool-related ones", async () => {
    const { driver } = fakeDriver();
    const notices: unknown[] = [];
    const closes: number[] = [];
    const f = postgresFactory(driver, {
      host: "db",
      prepare: false,
      max: 20,
      idle_timeout: 30,
      onnotice: (n: unknown) => notices.push(n),
      onclose: (id: number) => closes.push(id),
    });
    const sql = await f.create(signal());
    assert.equal(sql.url, undefined);
    assert.equal(sql.options.host, "db");
    assert.equal(sql.options.prepare, false);
    assert.deepEqual([sql.options.max, sql.options.idle_timeout], [1, 0]);
    sql.options.onnotice!("hi");
    assert.deepEqual(notices, ["hi"]);
    sql.dropConnection();
    assert.deepEqual(closes, [1]);
  });

  it("create() ends the client and rejects with signal.reason when aborted", async () => {
    const { driver, made } = fakeDriver((sql) => sql.next = "hang");
    const f = postgresFactory(driver, URL);
    const controller = new AbortController();
    const creating = Promise.resolve(f.create(controller.signal));
    const reason = new Error("create timed out");
    controller.abort(reason);
    await assert.rejects(creating, (e) => e === reason);
    // Gracefully, within endTimeoutMs: the client may be mid-startup.
    assert.deepEqual(made[0].ends, [{ timeout: 1 }]);
  });

  it("create() ends the client when connecting fails", async () => {
    const { driver, made } = fakeDriver((sql) =>
      sql.next = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {
        code: "ECONNREFUSED",
      })
    );
    const f = postgresFactory(driver, URL);
    await assert.rejects(Promise.resolve(f.create(signal())), { code: "ECONNREFUSED" });
    assert.deepEqual(made[0].ends, [{ timeout: 0 }]);
  });

  it("validate() runs validateQuery, and fails at once for a closed connection", async () => {
    const { driver } = fakeDriver();
    const f = postgresFactory(driver, URL, { validateQuery: "select 42" });
    const sql = await f.create(signal());
    assert.equal(await f.validate!(sql, signal(), info), true);
    assert.deepEqual(sql.queries, ["select 1", "select 42"]);
    sql.dropConnection();
    assert.equal(await f.validate!(sql, signal(), info), false);
    assert.equal(sql.queries.length, 2);
  });

  it("validate() rejects with signal.reason when it hangs, and destroy() then does not wait", async () => {
    const { driver } = fakeDriver();
    const f = postgresFactory(driver, URL, { endTimeoutMs: 3_000 });
    const sql = await f.create(signal());
    sql.next = "hang";
    const controller = new AbortController();
    const checking = Promise.resolve(f.validate!(sql, controller.signal, info));
    controller.abort(new Error("validate timed out"));
    await assert.rejects(checking, /validate timed out/);
    await f.destroy!(sql, info);
    assert.deepEqual(sql.ends, [{ timeout: 0 }]);
  });

  it("destroy() ends the client with endTimeoutMs in seconds", async () => {
    const { driver } = fakeDriver();
    const f = postgresFactory(driver, URL, { endTimeoutMs: 1_500 });
    const sql = await f.create(signal());
    await f.destroy!(sql, info);
    assert.deepEqual(sql.ends, [{ timeout: 1.5 }]);
  });

  it("reset() sends the statements of its mode, or resetQuery", async () => {
    const cases: [object, string | undefined][] = [
      [{}, "rollback"],
      [{ reset: "rollback" }, "rollback"],
      [{ reset: "none" }, undefined],
      [{ resetQuery: "rollback; reset all" }, "rollback; reset all"],
    ];
    for (const [options, expected] of cases) {
      const { driver } = fakeDriver();
      const f = postgresFactory(driver, URL, options);
      const sql = await f.create(signal());
      await f.reset!(sql, info);
      assert.deepEqual(sql.queries.slice(1), expected === undefined ? [] : [expected]);
    }
    const { driver } = fakeDriver();
    const f = postgresFactory(driver, URL, { reset: "discard" });
    const sql = await f.create(signal());
    await f.reset!(sql, info);
    // In a transaction of its own, after the rollback: a statement that fails undoes them all.
    assert.match(sql.queries[1], /^rollback; begin; .*reset all.*discard temp.*; commit$/);
    assert.doesNotMatch(sql.queries[1], /deallocate|discard all/i);
  });

  it("reset() throws for a closed connection so the pool destroys it", async () => {
    const { driver } = fakeDriver();
    const f = postgresFactory(driver, URL);
    const sql = await f.create(signal());
    sql.dropConnection();
    // It may throw at once (no SQL to send) or reject: the pool destroys it either way.
    await assert.rejects(async () => await f.reset!(sql, info), /closed/);
  });

  it("reset() is awaited by default and pipelined with pipelineReset", async () => {
    const cases: [object, boolean][] = [
      [{}, false],
      [{ reset: "rollback" }, false],
      [{ reset: "rollback", pipelineReset: true }, true],
      [{ pipelineReset: false }, false],
      [{ reset: "discard" }, false],
      [{ reset: "discard", pipelineReset: true }, true],
      [{ resetQuery: "rollback; reset all" }, false],
    ];
    for (const [options, pipelined] of cases) {
      const { driver } = fakeDriver();
      const f = postgresFactory(driver, URL, options);
      const sql = await f.create(signal());
      sql.next = "hang"; // an answer never comes: only an awaited reset would notice
      const outcome = f.reset!(sql, info);
      assert.equal(sql.queries.length, 2, `${JSON.stringify(options)} sent its statements`);
      if (pipelined) {
        assert.equal(outcome, undefined, `${JSON.stringify(options)} returns at once`);
      } else {
        assert.ok(outcome instanceof Promise, `${JSON.stringify(options)} returns a promise`);
      }
      await f.destroy!(sql, info); // clears the pipelined reset's watchdog
    }
  });

  it("rejects a non-boolean pipelineReset, one with a resetQuery and a bad pipelinedResetTimeoutMs", () => {
    const { driver } = fakeDriver();
    assert.throws(() => postgresFactory(driver, URL, { pipelineReset: "yes" as never }), {
      name: "TypeError",
      message: /pipelineReset must be a boolean, received string/,
    });
    // A custom reset that failed part-way could not stop what is pipelined behind it.
    assert.throws(
      () => postgresFactory(driver, URL, { resetQuery: "reset all", pipelineReset: true }),
      { name: "TypeError", message: /pipelineReset works with reset "rollback" or "discard"/ },
    );
    postgresFactory(driver, URL, { resetQuery: "reset all", pipelineReset: false }); // fine
    assert.throws(() => postgresFactory(driver, URL, { pipelinedResetTimeoutMs: -1 }), {
      name: "RangeError",
      message: /pipelinedResetTimeoutMs .* received -1/,
    });
  });

  it("ends the connection when a pipelined reset fails", async () => {
    const { driver } = fakeDriver();
    const dropped: FakeSql[] = [];
    const f = postgresFactory(driver, URL, {
      pipelineReset: true,
      onDisconnect: (c) => dropped.push(c),
    });
    const sql = await f.create(signal());
    sql.next = Object.assign(new Error("terminating connection"), { code: "57P01" });
    assert.equal(f.reset!(sql, info), undefined);
    assert.equal(f.isAlive!(sql), true); // not known yet
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(f.isAlive!(sql), false);
    assert.deepEqual(sql.ends, [{ timeout: 0 }]);
    assert.deepEqual(dropped, [sql]);
    assert.throws(() => f.reset!(sql, info), /closed/); // the pool destroys it on its next release
  });

  it("ends the connection when a pipelined reset goes unanswered, and only then", async () => {
    const { driver } = fakeDriver();
    const f = postgresFactory(driver, URL, {
      pipelineReset: true,
      pipelinedResetTimeoutMs: 200,
    });
    const sql = await f.create(signal());
    // Answered resets, then quiet: the watchdog finds nothing overdue and stops.
    for (let i = 0; i < 3; i++) assert.equal(f.reset!(sql, info), undefined);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(f.isAlive!(sql), true);
    assert.deepEqual(sql.ends, []);
    // One answered (it arms the watchdog), then 100 ms later one that hangs: the watchdog finds
    // it 100 ms old and waits on; the connection is ended once it is 200 ms old, not before.
    f.reset!(sql, info);
    await new Promise((resolve) => setTimeout(resolve, 100));
    sql.next = "hang";
    const sent = performance.now();
    f.reset!(sql, info);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(f.isAlive!(sql), true);
    while (f.isAlive!(sql) && performance.now() - sent < 2_000) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(f.isAlive!(sql), false);
    assert.ok(performance.now() - sent >= 199, "not ended before its deadline");
    assert.deepEqual(sql.ends, [{ timeout: 0 }]);
  });

  it("with pipelineReset, a pool hands the connection on within release()", async () => {
    const { driver, made } = fakeDriver();
    const pool = new Pool(postgresFactory(driver, URL, { pipelineReset: true }), { max: 1 });
    try {
      const lease = await pool.acquire();
      const waiting = pool.acquire();
      await lease.release();
      const next = await waiting;
      assert.equal(next.value, made[0]);
      assert.deepEqual(made[0].queries, ["select 1", "rollback"]); // sent before the next lease
      await next.release();
      assert.equal(pool.stats().created, 1);
    } finally {
      await pool.close();
    }
  });

  it("ends a client whose connection dropped and calls onDisconnect once", async () => {
    const { driver } = fakeDriver();
    const dropped: FakeSql[] = [];
    const f = postgresFactory(driver, URL, { onDisconnect: (c) => dropped.push(c) });
    const sql = await f.create(signal());
    sql.dropConnection();
    sql.dropConnection();
    assert.deepEqual(dropped, [sql]);
    assert.deepEqual(sql.ends, [{ timeout: 0 }]); // no silent reconnect with a fresh session
    assert.equal(f.isBroken!(sql, new Error("anything")), true);
    await f.destroy!(sql, info);
    assert.equal(dropped.length, 1); // our own end is not a disconnect
  });

  it("isBroken() is true for connection errors only", async () => {
    const { driver } = fakeDriver();
    const f = postgresFactory(driver, URL);
    const sql = await f.create(signal());
    const err = (code: string, severity = "ERROR") =>
      Object.assign(new Error(code), { code, severity });
    assert.equal(f.isBroken!(sql, err("23505")), false);
    assert.equal(f.isBroken!(sql, err("25P02")), false);
    assert.equal(f.isBroken!(sql, err("57P01", "FATAL")), true);
    assert.equal(f.isBroken!(sql, err("CONNECTION_CLOSED")), true);
  });
});

describe("isConnectionError()", () => {
  it("recognises driver, socket and server codes that end a session", () => {
    const yes = [
      "CONNECTION_CLOSED",
      "CONNECTION_DESTROYED",
      "CONNECTION_ENDED",
      "CONNECT_TIMEOUT",
      "ECONNRESET",
      "ECONNREFUSED",
      "EPIPE",
      "08006",
      "08P01",
      "57P01",
      "57P02",
      "57P03",
    ];
    for (const code of yes) {
      assert.equal(isConnectionError(Object.assign(new Error(), { code })), true, code);
    }
    for (const code of ["23505", "42P01", "22012", "25P02", "40001", "57014"]) {
      assert.equal(isConnectionError(Object.assign(new Error(), { code })), false, code);
    }
    assert.equal(isConnectionError({ code: "28P01", severity: "FATAL" }), true);
    for (const v of [undefined, null, "ECONNRESET", 42, new Error("plain")]) {
      assert.equal(isConnectionError(v), false);
    }
  });
});

describe("postgresFactory() redaction", () => {
  const leaky = () =>
    Object.assign(
      new TypeError(`Invalid URL: '${URL}'`),
      { code: "ERR_INVALID_URL", input: URL, severity: "ERROR", detail: `pw ${PASSWORD}` },
    );

  it("replaces a driver error that quotes the password by a redacted copy", async () => {
    const { driver } = fakeDriver((sql) => sql.next = leaky());
    const f = postgresFactory(driver, URL);
    const error = await Promise.resolve(f.create(signal())).then(() => undefined, (e) => e);
    assert.ok(error instanceof Error);
    assert.equal(error.name, "TypeError");
    assert.equal(error.message, "Invalid URL: 'postgres://app:***@db.example:5432/app'");
    assert.deepEqual(
      [(error as { code?: string }).code, (error as { severity?: string }).severity],
      ["ERR_INVALID_URL", "ERROR"],
    );
    assert.equal((error as { detail?: string }).detail, "pw ***");
    assert.equal(error.cause, undefined);
    const text = inspect(error, { showHidden: true, depth: 5 }) + String(error.stack);
    assert.equal(text.includes(PASSWORD), false, text);
  });

  it("redacts a password given in options, URL-encoded spellings, and a thrown driver", async () => {
    const pw = "p@ss:w/rd!";
    const throwing = (() => {
      throw new Error(`bad config for ${encodeURIComponent(pw)} / ${pw}`);
    }) as unknown as (url: string, o?: object) => FakeSql;
    const f = postgresFactory(throwing, { password: pw, host: "h" });
    const error = await Promise.resolve(f.create(signal())).then(() => undefined, (e) => e);
    assert.equal((error as Error).message, "bad config for *** / ***");
  });

  it("redacts a password pasted into the URL without percent-encoding", async () => {
    // "/", "?", "#" or "@" in a password make the URL invalid: the driver quotes it whole.
    for (const pw of ["Zm9v/YmFy+cXV4", "a?b#c/d-e", "p@ss/w0rd", "x@y@z:1"]) {
      const url = `postgres://app:${pw}@db.example:5432/app`;
      const invalid = Object.assign(new TypeError(`Invalid URL: '${url}'`), {
        code: "ERR_INVALID_URL",
        input: url,
      });
      const throwing = (() => {
        throw invalid;
      }) as unknown as (url: string, o?: object) => FakeSql;
      const f = postgresFactory(throwing, url);
      const error = await Promise.resolve(f.create(signal())).then(() => undefined, (e) => e);
      assert.equal(
        (error as Error).message,
        "Invalid URL: 'postgres://app:***@db.example:5432/app'",
      );
      const text = inspect(error, { showHidden: true, depth: 5 }) + String((error as Error).stack);
      for (const part of pw.split(/[/?#@:]/).filter((p) => p.length >= 3)) {
        assert.equal(text.includes(part), false, `${pw}: ${text}`);
      }
    }
  });

  it("passes a clean driver error through unchanged", async () => {
    const clean = Object.assign(new Error('password authentication failed for user "app"'), {
      code: "28P01",
      severity: "FATAL",
    });
    const { driver } = fakeDriver((sql) => sql.next = clean);
    const f = postgresFactory(driver, URL);
    await assert.rejects(Promise.resolve(f.create(signal())), (e) => e === clean);
  });

  it("keeps the password out of a pool's errors and events", async () => {
    const { driver } = fakeDriver((sql) => sql.next = leaky());
    const texts: string[] = [];
    const pool = new Pool(postgresFactory(driver, URL), {
      min: 1,
      onEvent: (e) => texts.push(inspect(e, { showHidden: true, depth: 5 })),
    });
    const error = await pool.ready({ timeoutMs: 50 }).then(() => undefined, (e) => e);
    await pool.close();
    texts.push(inspect(error, { showHidden: true, depth: 5 }), String(error));
    const all = texts.join("\n");
    assert.match(all, /Invalid URL/);
    assert.equal(all.includes(PASSWORD), false, all);
  });
});
