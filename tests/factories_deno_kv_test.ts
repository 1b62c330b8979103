/**
 * denoKvFactory with the npm @deno/kv client (every runtime), with Deno.openKv (a Deno
 * subprocess with --unstable-kv), and with scripted fakes for abort and validation.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { makeLimitedV8Serializer, openKv as npmOpenKv } from "@deno/kv";
import { Pool } from "../mod.ts";
import { denoKvFactory, type KvHandle } from "../src/factories/deno_kv.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const info = { id: 1, createdAt: 0, lastUsedAt: 0, uses: 0 };
let dir: string;

// Bun's v8.serialize uses JavaScriptCore's format, so @deno/kv needs an explicit serializer there.
const openKv = "Bun" in globalThis
  ? (path?: string) => npmOpenKv(path, makeLimitedV8Serializer())
  : (path?: string) => npmOpenKv(path);

describe("denoKvFactory()", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "edgepool-kv-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("validates its arguments", () => {
    assert.throws(() => denoKvFactory(42 as never), TypeError);
    assert.throws(() => denoKvFactory(undefined, { openKv: "x" as never }), TypeError);
    assert.throws(() => denoKvFactory(undefined, { validateKey: [] }), TypeError);
    assert.throws(() => denoKvFactory(undefined, null as never), TypeError);
  });

  it("pools @deno/kv handles on one database file", async () => {
    const path = join(dir, "npm.db");
    const pool = new Pool(denoKvFactory(path, { openKv }), { max: 3 });
    try {
      await Promise.all(
        Array.from({ length: 12 }, (_, i) => pool.use((kv) => kv.set(["n", i], `v${i}`))),
      );
      const values = await pool.use(async (kv) => {
        const out: unknown[] = [];
        for await (const entry of kv.list({ prefix: ["n"] })) out.push(entry.value);
        return out;
      });
      assert.equal(values.length, 12);
      assert.ok(pool.stats().created <= 3);
      // validate() reads a key through the handle
      const f = denoKvFactory(path, { openKv });
      const kv = await f.create(new AbortController().signal);
      assert.equal(await f.validate!(kv, new AbortController().signal, info), true);
      await f.destroy!(kv, info);
      // a closed handle fails, and isBroken() recognises the error
      const error = await kv.get(["n", 0]).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof Error);
      assert.equal(f.isBroken!(kv, error), true);
      assert.equal(f.isBroken!(kv, new Error("value too large")), false);
    } finally {
      await pool.close({ timeoutMs: 1_000 });
    }
  });

  it("says what to pass when the runtime has no Deno.openKv", async () => {
    const builtin = (globalThis as { Deno?: { openKv?: unknown } }).Deno?.openKv;
    if (typeof builtin === "function") return; // Deno with --unstable-kv: nothing is missing
    const f = denoKvFactory();
    await assert.rejects(
      Promise.resolve(f.create(new AbortController().signal)),
      /needs Deno\.openKv \(run Deno with --unstable-kv\) or an openKv option/,
    );
  });

  it("uses Deno.openKv on Deno with --unstable-kv", () => {
    const script = `
      import { Pool } from "./mod.ts";
      import { denoKvFactory } from "./src/factories/deno_kv.ts";
      const pool = new Pool(denoKvFactory(${JSON.stringify(join(dir, "deno.db"))}), { max: 2 });
      await pool.use((kv) => kv.set(["k"], { deep: [1, 2n] }));
      const entry = await pool.use((kv) => kv.get(["k"]));
      await pool.close();
      console.log(JSON.stringify(entry.value, (_, v) => typeof v === "bigint" ? v + "n" : v));
    `;
    const deno = join(ROOT, "node_modules", ".bin", "deno");
    const r = spawnSync(deno, ["eval", "--unstable-kv", "--no-check", "--ext=ts", script], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '{"deep":[1,"2n"]}');
  });

  it("create() rejects with signal.reason when aborted and closes a late handle", async () => {
    let closed = 0;
    let open!: (kv: KvHandle) => void;
    const f = denoKvFactory("x", {
      openKv: () => new Promise<KvHandle>((resolve) => open = resolve),
    });
    const controller = new AbortController();
    const creating = Promise.resolve(f.create(controller.signal));
    controller.abort(new Error("too slow"));
    await assert.rejects(creating, /too slow/);
    open({ get: () => Promise.resolve(null), close: () => void closed++ });
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(closed, 1);
  });

  it("validate() gives up when its signal aborts", async () => {
    const hung: KvHandle = { get: () => new Promise(() => {}), close() {} };
    const f = denoKvFactory("x", { openKv: () => Promise.resolve(hung) });
    const controller = new AbortController();
    const checking = Promise.resolve(f.validate!(hung, controller.signal, info));
    controller.abort(new Error("validate timed out"));
    await assert.rejects(checking, /validate timed out/);
  });
});
