/**
 * Smoke tests of the examples, each run as a child process and driven over loopback HTTP.
 * Runtime-neutral examples run on the runtime running the tests (so the whole suite covers each
 * on Deno, Bun and Node); `deno_deploy.ts` always runs on Deno and `bun_serve.ts` on Bun.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  commandFor,
  ExampleProcess,
  RUNTIME,
  type Runtime,
  runToEnd,
  type StartedServer,
  startServer,
  until,
} from "./fixtures/examples_spawn.ts";
import type { PoolStats } from "../mod.ts";

const ACQUIRE_TIMEOUT_MS = 1_500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Fetches JSON or text; never leaves a body unread. */
async function get(url: string, signal?: AbortSignal) {
  const response = await fetch(url, { signal });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text };
}

/** The same checks for every server example: they all behave alike. */
function describeServer(file: string, runtime: Runtime, extra?: (s: () => StartedServer) => void) {
  describe(`${file} on ${runtime}`, () => {
    let server: StartedServer | undefined;
    const started = () => {
      assert.ok(server, "the server did not start");
      return server;
    };
    const stats = async (): Promise<PoolStats> =>
      JSON.parse((await get(new URL("/stats", started().url).href)).text);
    const at = (path: string) => new URL(path, started().url).href;
    // The request holding the only connection through the middle tests.
    const holder = new AbortController();
    let holding: Promise<unknown> | undefined;

    before(async () => {
      server = await startServer(runtime, file, {
        POOL_MAX: "1",
        POOL_MAX_WAITING: "1",
        ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
      });
    });

    after(async () => {
      holder.abort();
      await holding?.catch(() => {});
      await server?.process[Symbol.asyncDispose]();
    });

    it("answers GET / with a greeting from a pooled connection, reused", async () => {
      const first = await get(at("/"));
      assert.equal(first.status, 200, first.text);
      const body = JSON.parse(first.text);
      assert.equal(typeof body.text, "string");
      assert.equal(typeof body.lang, "string");
      const second = JSON.parse((await get(at("/"))).text);
      assert.equal(second.visits, body.visits + 1);
      assert.equal(second.connection, body.connection, "the second request reused the connection");
      const s = await stats();
      assert.deepEqual([s.created, s.idle, s.active, s.acquired, s.released], [1, 1, 0, 2, 2]);
    });

    it("drops a queued acquire at once when its client hangs up", async () => {
      holding = get(at("/?holdMs=60000"), holder.signal);
      await until(
        "the slow request to hold the connection",
        async () => (await stats()).active === 1,
      );
      const client = new AbortController();
      const queued = get(at("/"), client.signal);
      await until("the request to queue", async () => (await stats()).waiting === 1);
      client.abort();
      await assert.rejects(queued);
      const s = await until("the aborted acquire to leave the queue", async () => {
        const s = await stats();
        return s.aborted === 1 && s.waiting === 0 ? s : undefined;
      });
      assert.equal(s.active, 1);
    });

    it("answers 503 with Retry-After when the wait queue is full, and when the wait times out", async () => {
      const t0 = Date.now();
      const queued = get(at("/"));
      await until("the request to queue", async () => (await stats()).waiting === 1);
      const refused = await get(at("/"));
      assert.equal(refused.status, 503, refused.text);
      assert.equal(refused.headers.get("retry-after"), "1");
      assert.match(refused.text, /wait queue is full/);
      assert.equal((await stats()).exhausted, 1);

      const timedOut = await queued;
      assert.equal(timedOut.status, 503, timedOut.text);
      assert.equal(timedOut.headers.get("retry-after"), "1");
      assert.match(timedOut.text, new RegExp(`timed out after ${ACQUIRE_TIMEOUT_MS} ms`));
      assert.ok(Date.now() - t0 >= ACQUIRE_TIMEOUT_MS - 50);
      assert.equal((await stats()).timedOut, 1);
    });

    it("releases the connection when the client hangs up during the query", async () => {
      holder.abort();
      await assert.rejects(holding!);
      const s = await until("the connection to come back", async () => {
        const s = await stats();
        return s.active === 0 ? s : undefined;
      });
      assert.equal(s.idle + s.destroyed, s.created);
      assert.equal(s.released, s.acquired);
      const again = await get(at("/"));
      assert.equal(again.status, 200, again.text);
    });

    extra?.(started);

    it("on SIGTERM finishes the request in flight, closes the pool and exits 0", async () => {
      const inFlight = get(at("/?holdMs=300"));
      await until("the request to hold the connection", async () => (await stats()).active === 1);
      const exit = started().process.stop("SIGTERM");
      const answer = await inFlight;
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(await exit, { code: 0, signal: null }, started().process.output);
      assert.match(
        started().process.stdout,
        /pool closed: 0 resources leaked, 0 connections open/,
        started().process.output,
      );
      // Deno's legacy abort of req.signal after every successful response is opted out of in
      // deno.json: it would warn once on stderr here (the handlers pass req.signal to acquire).
      assert.doesNotMatch(started().process.output, /legacy behavior/, started().process.output);
    });
  });
}

describe("examples/basics.ts", () => {
  it(`runs each scenario on ${RUNTIME} and ends with nothing leaked`, async () => {
    const run = await runToEnd(RUNTIME, "examples/basics.ts");
    assert.equal(run.code, 0, run.output);
    const expected = [
      /^edgepool basics on SQLite [\d.]+ \((node|bun):sqlite\)/m,
      /connection 1 answered 42; 0 idle, 1 in use, 0 waiting/,
      /released: 1 idle, 0 in use, 0 waiting/,
      /the scope threw "something failed inside the scope"; 1 idle, 0 in use, 0 waiting/,
      /60 updates on 3 connections, at most 3 in use at once/,
      /AcquireTimeoutError: cannot acquire: timed out after 100 ms \(3 in use, 0 idle, 1 waiting/,
      /released them: 3 idle, 0 in use, 0 waiting/,
      /connection (\d+) broke while idle\n.*the next acquire got connection (?!\1\b)\d+; validation failures: 1, destroyed: 1/,
      /^resources leaked: 0, connections open: 0$/m,
    ];
    for (const pattern of expected) assert.match(run.stdout, pattern, run.output);
  });
});

describe("examples/demo.ts", () => {
  for (const database of ["sqlite", "postgres"]) {
    it(`runs its three phases on ${database} and ${RUNTIME}, dashboard up, nothing leaked`, async () => {
      // DEMO_DB=postgres needs PostgreSQL's binaries (or DATABASE_URL), as the integration tests.
      await using demo = new ExampleProcess(commandFor(RUNTIME, "examples/demo.ts"), {
        DEMO_DB: database,
        DEMO_SECONDS: "3",
      });
      const [, url] = await demo.waitFor(/^dashboard +(http:\/\/\S+)/m, 30_000);
      const page = await fetch(url);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<svg id="chart"/);
      const exit = await Promise.race([demo.exited, sleep(40_000).then(() => "late")]);
      assert.deepEqual(exit, { code: 0, signal: null }, demo.output);
      const expected = [
        database === "sqlite" ? /^database +SQLite [\d.]+/m : /^database +PostgreSQL \d+/m,
        /^phase 1\/3: steady load, pooled, 24 clients$/m,
        /^phase 2\/3: traffic spike, pooled, 96 clients$/m,
        /^phase 3\/3: steady load, a new connection per request, 24 clients$/m,
        /^ {2}requests per second +\d+ +\d+$/m,
        /^ {2}connections opened +[1-8] +\d+$/m,
        /^ {2}connections open at most +[1-8] +\d+$/m,
        /^ {2}503 Service Unavailable: \d+ wait queue full, \d+ timed out$/m,
        /^clients that hung up early: \d+; \d+ of them while queued/m,
        /^connections still open: 0 \(without the pool\), 0 \(pool\)$/m,
        /^resources leaked: 0$/m,
      ];
      for (const pattern of expected) assert.match(demo.stdout, pattern, demo.output);
      assert.doesNotMatch(demo.stdout, /requests that failed/, demo.output);
    });
  }
});

describeServer("examples/deno_deploy.ts", "deno");
describeServer("examples/bun_serve.ts", "bun");
describeServer("examples/node_http.ts", RUNTIME);
describeServer("examples/hono.ts", RUNTIME, (started) => {
  it("releases the connection when the handler throws", async () => {
    const failed = await fetch(new URL("/fail", started().url));
    assert.equal(failed.status, 500);
    assert.match(await failed.text(), /handler failed/);
    const s = JSON.parse(await (await fetch(new URL("/stats", started().url))).text());
    assert.equal(s.active, 0);
    assert.equal(s.released, s.acquired);
  });
});
