/**
 * The Redis recipe (examples/redis.ts: a Factory of node-redis clients) against a real
 * redis-server that this file starts on a free loopback port and always stops. Fails, not
 * skips, when redis-server is missing (`apt-get install redis-server`; `.ci/run` installs it).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Socket } from "node:net";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";
import { createClient } from "redis";
import { AcquireTimeoutError, Pool, type PoolEvent } from "../../mod.ts";
import {
  isRedisConnectionError,
  type RedisClient,
  redisFactory,
  type RedisFactoryOptions,
} from "../../examples/redis.ts";
import { freePort } from "../../scripts/pg_cluster.ts";
import { RUNTIME, runToEnd } from "../fixtures/examples_spawn.ts";
import { closePool, peakDuring, sleep, startProxy, waitFor } from "./_net.ts";

/** One redis-server child process; `stop()` and `start()` again on the same port. */
interface RedisServer {
  readonly port: number;
  readonly url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

async function redisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const bin = process.env.REDIS_SERVER ?? "redis-server";
      const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", ""];
      args.push("--appendonly", "no", "--daemonize", "no");
      const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
      child = proc;
      running.add(proc);
      let output = "";
      let gone = false;
      proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => output += chunk);
      proc.stderr!.setEncoding("utf8").on("data", (chunk: string) => output += chunk);
      exited = new Promise<void>((resolve) => {
        proc.once("error", (error) => {
          output += `\n${error.message}`;
          gone = true;
          resolve();
        });
        proc.once("exit", () => {
          gone = true;
          running.delete(proc);
          resolve();
        });
      });
      const deadline = Date.now() + 10_000;
      while (!output.includes("Ready to accept connections")) {
        if (gone || Date.now() > deadline) {
          proc.kill("SIGKILL");
          throw new Error(
            `redis-server did not start on port ${port} (install it: apt-get install ` +
              `redis-server, or set REDIS_SERVER):\n${output.slice(-2_000)}`,
          );
        }
        await sleep(20);
      }
    },
    async stop() {
      const proc = child;
      child = undefined;
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await server.start();
  return server;
}

let redis: RedisServer;
let admin: RedisClient;
let names = 0;

/** A unique client name, so each test counts only its own connections. */
function clientName(): string {
  return `edgepool-test-${process.pid}-${++names}`;
}

function factory(name: string, options?: RedisFactoryOptions, url = redis.url) {
  return redisFactory(url, { name, ...options });
}

/** The server's view: ids of the connections named `name`. */
async function clientIds(name: string): Promise<number[]> {
  return (await admin.clientList()).filter((c) => c.name === name).map((c) => Number(c.id));
}

async function kill(ids: number[]): Promise<void> {
  for (const id of ids) await admin.sendCommand(["CLIENT", "KILL", "ID", String(id)]);
}

async function openAdmin(): Promise<RedisClient> {
  const client: RedisClient = createClient({ url: redis.url });
  client.on("error", () => {});
  await client.connect();
  return client;
}

describe("redisFactory (examples/redis.ts) with a running redis-server", () => {
  before(async () => {
    redis = await redisServer();
    admin = await openAdmin();
  });
  after(async () => {
    admin?.destroy();
    await redis?.stop();
  });

  it("acquires a named connection, runs commands and reuses it after release", async () => {
    const name = clientName();
    const pool = new Pool(factory(name), { max: 2 });
    try {
      const lease = await pool.acquire();
      const id = await lease.value.clientId();
      assert.deepEqual(await clientIds(name), [id]);
      assert.equal(await lease.value.set(`${name}:k`, "v"), "OK");
      await lease.release();
      {
        await using again = await pool.acquire();
        assert.equal(await again.value.clientId(), id);
        assert.equal(await again.value.get(`${name}:k`), "v");
      }
      assert.equal(await pool.use((r) => r.del(`${name}:k`)), 1);
      assert.deepEqual([pool.stats().created, pool.stats().idle], [1, 1]);
    } finally {
      await closePool(pool);
    }
    await waitFor("the connection to close", async () => (await clientIds(name)).length === 0);
  });

  it("never opens more than max connections, counted by the server (CLIENT LIST)", async () => {
    const name = clientName();
    const pool = new Pool(factory(name), { max: 4 });
    let most = 0;
    try {
      const { value: results, peak } = await peakDuring(
        async () => (await clientIds(name)).length,
        // BLPOP with a timeout holds its connection on the server: one caller per connection.
        () =>
          Promise.all(
            Array.from({ length: 60 }, (_, i) =>
              pool.use(async (r) => {
                await r.blPop(`${name}:empty`, 0.005);
                return i;
              })),
          ),
      );
      most = peak;
      assert.deepEqual(results, Array.from({ length: 60 }, (_, i) => i));
    } finally {
      await closePool(pool);
    }
    assert.ok(most >= 2, `expected concurrency, saw ${most} connections`);
    assert.ok(most <= 4, `the server saw ${most} connections for max 4`);
    assert.equal(pool.stats().created, 4);
  });

  it("never hands out a connection killed while idle (CLIENT KILL), and replaces it", async () => {
    const name = clientName();
    // Default validateBypassMs (500): isAlive() alone catches the dead connections.
    const pool = new Pool(factory(name), { max: 2 });
    try {
      const leases = [await pool.acquire(), await pool.acquire()];
      const clients = leases.map((lease) => lease.value);
      for (const lease of leases) await lease.release();
      const killed = await clientIds(name);
      assert.equal(killed.length, 2);
      await kill(killed);
      await waitFor("the clients to see the close", () => clients.every((c) => !c.isReady));
      for (let round = 0; round < 3; round++) {
        const now = [await pool.acquire(), await pool.acquire()];
        for (const lease of now) {
          assert.equal(lease.value.isReady, true);
          assert.ok(!killed.includes(await lease.value.clientId()));
          await lease.release();
        }
      }
      const s = pool.stats();
      assert.deepEqual([s.destroyed, s.created, s.total], [2, 4, 2]);
      assert.equal((await clientIds(name)).length, 2);
    } finally {
      await closePool(pool);
    }
  });

  it("gives the user of a killed leased connection the driver's error, drops it and recovers", async () => {
    const name = clientName();
    const events: PoolEvent[] = [];
    const pool = new Pool(factory(name), { max: 1, onEvent: (e) => events.push(e) });
    try {
      const error = await pool.use(async (r) => {
        await kill([await r.clientId()]);
        await waitFor("the client to see the close", () => !r.isReady);
        await r.ping();
      }).then(() => undefined, (e: unknown) => e);
      assert.ok(isRedisConnectionError(error), `not a connection error: ${inspect(error)}`);
      assert.equal(events.filter((e) => e.type === "destroy" && e.reason === "error").length, 1);
      assert.equal(await pool.use((r) => r.ping()), "PONG");
      assert.equal(pool.stats().created, 2);
      // A command error is not a connection error: the connection stays.
      await assert.rejects(pool.use((r) => r.sendCommand(["NO-SUCH-COMMAND"])), /unknown command/);
      assert.deepEqual([pool.stats().created, pool.stats().idle], [2, 1]);
    } finally {
      await closePool(pool);
    }
  });

  it('resets pub/sub and WATCH before reuse; reset: "always" also undoes SELECT', async () => {
    const name = clientName();
    const pool = new Pool(factory(name), { max: 1 });
    try {
      const id = await pool.use(async (r) => {
        await r.subscribe(`${name}:channel`, () => {});
        assert.equal(r.isPubSubActive, true);
        return await r.clientId(); // allowed in RESP3 pub/sub mode
      });
      await pool.use(async (r) => {
        assert.equal(r.isPubSubActive, false);
        assert.equal(await r.clientId(), id);
        await r.watch(`${name}:k`);
      });
      await pool.use(async (r) => {
        assert.equal(r.isWatching, false);
        assert.equal(await r.clientId(), id);
      });
      // RESET keeps the connection's name (the handshake runs again).
      assert.deepEqual(await clientIds(name), [id]);
    } finally {
      await closePool(pool);
    }

    const always = new Pool(factory(name, { reset: "always" }), { max: 1 });
    try {
      await always.use((r) => r.select(3));
      const info = await always.use((r) => r.clientInfo());
      assert.deepEqual([info.db, info.name], [0, name]);
    } finally {
      await closePool(always);
    }
  });

  it("cuts off a PING that never answers (a hung connection) and replaces the connection", async () => {
    const proxy = await startProxy(redis.port);
    const name = clientName();
    const pool = new Pool(
      factory(name, { closeTimeoutMs: 5_000 }, `redis://127.0.0.1:${proxy.port}`),
      { max: 1, validateBypassMs: 0, validateTimeoutMs: 200, destroyTimeoutMs: 1_000 },
    );
    try {
      const first = await pool.use((r) => r.clientId());
      proxy.freeze(); // the connection stays open, but nothing gets through
      const started = Date.now();
      const second = await pool.use((r) => r.clientId(), { timeoutMs: 3_000 });
      const tookMs = Date.now() - started;
      assert.notEqual(second, first);
      assert.ok(tookMs >= 190 && tookMs < 1_000, `took ${tookMs} ms`);
      const s = pool.stats();
      assert.deepEqual([s.validationFailures, s.destroyed, s.created], [1, 1, 2]);
      // The hung client was dropped at once (not after closeTimeoutMs): only the new one is open.
      await waitFor("one connection through the proxy", () => proxy.open === 1, 1_000);
    } finally {
      await closePool(pool);
      await proxy.close();
    }
  });

  it("create() rejects with signal.reason when aborted mid-connect and closes the socket", async () => {
    // A server that accepts connections and never answers: the handshake hangs.
    const sockets = new Set<Socket>();
    let connections = 0;
    const silent = createServer((socket) => {
      connections++;
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      socket.resume(); // read (and drop) the handshake, so the client's close is seen
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    try {
      const f = redisFactory(`redis://127.0.0.1:${port}`);
      const controller = new AbortController();
      const creating = Promise.resolve(f.create(controller.signal));
      await waitFor("the connection", () => sockets.size === 1);
      const reason = new Error("stop");
      controller.abort(reason);
      await assert.rejects(creating, (e) => e === reason);
      await waitFor("the socket to close", () => sockets.size === 0, 2_000);

      // Aborted before TCP even connected: the socket node-redis opens afterwards is closed too.
      const early = new AbortController();
      const accepted = connections;
      const late = Promise.resolve(f.create(early.signal));
      early.abort(reason);
      await assert.rejects(late, (e) => e === reason);
      await waitFor("the late socket", () => connections === accepted + 1, 2_000);
      await waitFor("the late socket to close", () => sockets.size === 0, 2_000);

      // Through a pool: createTimeoutMs aborts it the same way.
      const pool = new Pool(f, { max: 1, createTimeoutMs: 150 });
      await assert.rejects(pool.acquire({ timeoutMs: 400 }), AcquireTimeoutError);
      await pool.close({ timeoutMs: 1_000 });
      await waitFor("every socket to close", () => sockets.size === 0, 2_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it(`the example program runs against the server (on ${RUNTIME})`, async () => {
    const run = await runToEnd(RUNTIME, "examples/redis.ts", { REDIS_URL: redis.url }, 15_000);
    assert.equal(run.code, 0, run.output);
    assert.match(run.stdout, /20 increments, highest \d+; doubled: \d+/);
    assert.match(run.stdout, /[1-4] connections opened for 21 leases \(max 4\)/);
  });
});

describe("redisFactory when the server goes away", () => {
  before(async () => {
    redis = await redisServer();
  });
  after(async () => {
    await redis?.stop();
  });

  it("fails acquires with AcquireTimeoutError (cause: the connection error), then recovers", async () => {
    const name = clientName();
    const pool = new Pool(factory(name, { connectTimeoutMs: 1_000 }), { max: 2 });
    try {
      const client = await pool.use(async (r) => (await r.ping(), r));
      await redis.stop();
      await waitFor("the client to see the close", () => !client.isReady);
      // The idle connection is dead (isAlive), and every new one is refused.
      const started = Date.now();
      const error = await pool.acquire({ timeoutMs: 300 }).then(
        (lease) => (lease.release(), undefined),
        (e: unknown) => e,
      );
      const tookMs = Date.now() - started;
      assert.ok(error instanceof AcquireTimeoutError, `got ${inspect(error)}`);
      assert.ok(tookMs < 1_000, `the acquire took ${tookMs} ms`);
      assert.equal((error.cause as { code?: string }).code, "ECONNREFUSED");
      assert.ok(isRedisConnectionError(error.cause));
      assert.equal(pool.stats().total, 0);

      // A pool made while the server is down says the same.
      const fresh = new Pool(factory(clientName()), { max: 1 });
      await assert.rejects(fresh.acquire({ timeoutMs: 200 }), (e: unknown) => {
        assert.ok(e instanceof AcquireTimeoutError);
        assert.equal((e.cause as { code?: string }).code, "ECONNREFUSED");
        return true;
      });
      await fresh.close({ timeoutMs: 1_000 });

      await redis.start();
      admin = await openAdmin();
      await waitFor("the pool to connect again", async () => {
        try {
          return await pool.use((r) => r.ping(), { timeoutMs: 500 }) === "PONG";
        } catch {
          return false;
        }
      });
      assert.equal((await clientIds(name)).length, 1);
    } finally {
      admin?.destroy();
      await closePool(pool);
    }
  });
});
