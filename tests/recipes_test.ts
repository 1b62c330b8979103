/**
 * The TCP client recipe (examples/http_clients.ts: a Factory of `node:net` line-protocol
 * connections) against a tiny loopback line server started by this file.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { AcquireTimeoutError, Pool } from "../mod.ts";
import { isSocketError, lineClientFactory, type LineConnection } from "../examples/http_clients.ts";
import { RUNTIME, runToEnd } from "./fixtures/examples_spawn.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

/**
 * The server: `PING` → `PONG`, `WHO` → the connection's number, `SLEEP ms` → `OK` after `ms`,
 * `BYE` → closes the connection. Counts connections (open, most at once, accepted); `mute()`
 * makes the open connections stop answering without closing.
 */
class LineServer {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  accepted = 0;
  most = 0;
  #muted = new WeakSet<Socket>();

  constructor() {
    this.server = createServer((socket) => {
      const id = ++this.accepted;
      this.sockets.add(socket);
      this.most = Math.max(this.most, this.sockets.size);
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("error", () => {});
      let buffer = "";
      socket.setEncoding("utf8").on("data", (chunk: string) => {
        buffer += chunk;
        for (let end; (end = buffer.indexOf("\n")) >= 0; buffer = buffer.slice(end + 1)) {
          if (this.#muted.has(socket)) continue;
          const [command, arg] = buffer.slice(0, end).split(" ");
          if (command === "PING") socket.write("PONG\n");
          else if (command === "WHO") socket.write(`${id}\n`);
          else if (command === "SLEEP") setTimeout(() => socket.write("OK\n"), Number(arg));
          else if (command === "BYE") socket.destroy();
          else socket.write("ERR unknown command\n");
        }
      });
    });
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  get open(): number {
    return this.sockets.size;
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
  }

  /** Closes every open connection from the server's side. */
  drop(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  mute(): void {
    for (const socket of this.sockets) this.#muted.add(socket);
  }

  resetCounts(): void {
    this.accepted = 0;
    this.most = this.sockets.size;
  }

  close(): Promise<void> {
    this.drop();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let server: LineServer;

const who = (conn: LineConnection) => conn.request("WHO").then(Number);

describe("lineClientFactory (examples/http_clients.ts) against a loopback TCP server", () => {
  before(async () => {
    server = new LineServer();
    await server.listen();
  });
  after(async () => {
    await server?.close();
  });

  it("reuses one connection for requests one after another", async () => {
    await using pool = new Pool(lineClientFactory(server.port), { max: 4 });
    const before = server.accepted;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await pool.use(who));
    assert.equal(new Set(ids).size, 1);
    assert.equal(server.accepted - before, 1);
    assert.equal(await pool.use((conn) => conn.request("PING")), "PONG");
    assert.deepEqual([pool.stats().created, pool.stats().idle], [1, 1]);
  });

  it("never opens more than max connections, counted by the server", async () => {
    await waitFor("earlier connections to close", () => server.open === 0);
    server.resetCounts();
    const pool = new Pool(lineClientFactory(server.port), { max: 3 });
    try {
      const replies = await Promise.all(
        Array.from({ length: 40 }, () => pool.use((conn) => conn.request("SLEEP 3"))),
      );
      assert.deepEqual(replies, Array(40).fill("OK"));
      assert.equal(server.accepted, 3);
      assert.ok(server.most <= 3, `the server saw ${server.most} connections for max 3`);
    } finally {
      await pool.close();
    }
    await waitFor("the pool's connections to close", () => server.open === 0);
  });

  it("never hands out a socket the server closed while idle, and replaces it", async () => {
    // Default validateBypassMs: isAlive() alone catches the closed sockets.
    await using pool = new Pool(lineClientFactory(server.port), { max: 2 });
    const leases = [await pool.acquire(), await pool.acquire()];
    const conns = leases.map((lease) => lease.value);
    const old = await Promise.all(conns.map(who));
    for (const lease of leases) await lease.release();
    server.drop();
    await waitFor("the clients to see the close", () => conns.every((c) => !c.alive));
    for (let round = 0; round < 3; round++) {
      const now = [await pool.acquire(), await pool.acquire()];
      for (const lease of now) {
        assert.ok(!old.includes(await who(lease.value)));
        await lease.release();
      }
    }
    const s = pool.stats();
    assert.deepEqual([s.destroyed, s.created, s.total], [2, 4, 2]);
  });

  it("gives the user of a socket closed mid-request the error, drops it and recovers", async () => {
    await using pool = new Pool(lineClientFactory(server.port), { max: 1 });
    const first = await pool.use(who);
    const error = await pool.use((conn) => conn.request("BYE")).then(() => undefined, (e) => e);
    assert.ok(isSocketError(error), `not a socket error: ${error}`);
    assert.notEqual(await pool.use(who), first);
    assert.deepEqual([pool.stats().created, pool.stats().destroyed], [2, 1]);
    // A reply the protocol calls an error is not a broken connection: it stays.
    assert.equal(await pool.use((conn) => conn.request("NOPE")), "ERR unknown command");
    assert.deepEqual([pool.stats().created, pool.stats().idle], [2, 1]);
  });

  it("never lets a late reply reach the next user: a lease with a reply outstanding is destroyed", async () => {
    await using pool = new Pool(lineClientFactory(server.port), { max: 1 });
    const first = await pool.use(who);
    const reason = new Error("gave up");
    await assert.rejects(
      pool.use((conn) => conn.request("SLEEP 100", { signal: AbortSignal.timeout(10) })),
      (e: unknown) => e instanceof DOMException && e.name === "TimeoutError",
    );
    // Released by hand while a request is still in flight: reset() refuses it.
    const lease = await pool.acquire();
    const second = await who(lease.value);
    assert.notEqual(second, first);
    const pending = lease.value.request("SLEEP 50").catch(() => reason);
    await lease.release();
    assert.equal(await pending, reason, "destroying the connection fails its request");
    const third = await pool.use(who); // a reply of its own, not the stale "OK"
    assert.ok(third !== second && third !== first);
    assert.equal(pool.stats().destroyed, 2);
  });

  it("cuts off a PING that never answers and replaces the connection", async () => {
    await using pool = new Pool(lineClientFactory(server.port, { closeTimeoutMs: 100 }), {
      max: 1,
      validateBypassMs: 0,
      validateTimeoutMs: 150,
    });
    const first = await pool.use(who);
    server.mute(); // open, but silent
    const started = Date.now();
    const second = await pool.use(who, { timeoutMs: 2_000 });
    const tookMs = Date.now() - started;
    assert.notEqual(second, first);
    assert.ok(tookMs >= 140 && tookMs < 1_000, `took ${tookMs} ms`);
    const s = pool.stats();
    assert.deepEqual([s.validationFailures, s.destroyed, s.created], [1, 1, 2]);
  });

  it("create() rejects with signal.reason when aborted, and a refused connect is the cause of the timeout", async () => {
    const factory = lineClientFactory(server.port);
    const reason = new Error("stop");
    await assert.rejects(
      Promise.resolve(factory.create(AbortSignal.abort(reason))),
      (e) => e === reason,
    );
    const controller = new AbortController();
    const creating = Promise.resolve(factory.create(controller.signal));
    controller.abort(reason);
    await assert.rejects(creating, (e) => e === reason);
    await waitFor("no socket left open", () => server.open === 0);

    // Nobody listening: the acquire times out with the connect error as its cause.
    const closed = new LineServer();
    await closed.listen();
    const port = closed.port;
    await closed.close();
    const pool = new Pool(lineClientFactory(port), { max: 1 });
    try {
      await assert.rejects(pool.acquire({ timeoutMs: 200 }), (e: unknown) => {
        assert.ok(e instanceof AcquireTimeoutError);
        assert.equal((e.cause as { code?: string }).code, "ECONNREFUSED");
        return true;
      });
    } finally {
      await pool.close();
    }
  });

  it(`the example program runs (on ${RUNTIME})`, async () => {
    const run = await runToEnd(RUNTIME, "examples/http_clients.ts", {}, 15_000);
    assert.equal(run.code, 0, run.output);
    assert.match(run.stdout, /30 requests over connections 1, 2, 3/);
    assert.match(run.stdout, /6 connections opened, 3 replaced, max 3/);
  });
});
