/**
 * The npm package, end to end: `scripts/build_npm.ts` builds a package directory (esbuild ESM
 * plus tsc declarations), `npm pack` packs it, publint and `@arethetypeswrong/cli` lint the
 * tarball, and the tarball, unpacked into a fresh project's `node_modules/edgepool`, is
 * imported by plain Node 24, Bun and Deno and type-checked by a TypeScript consumer. Also checks
 * `scripts/check_exports.ts`, which keeps package.json `exports` in step with deno.json's.
 *
 * Everything happens in a temporary directory: the repository's dist/ is left alone.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) => join(ROOT, "node_modules", ".bin", name);
const NODE = bin("node");

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd = ROOT): Run {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  delete env.FORCE_COLOR;
  const result = spawnSync(command, args, { cwd, encoding: "utf8", env, timeout: 60_000 });
  return {
    status: result.status,
    stdout: result.stdout ?? "",
    stderr: `${result.stderr ?? ""}${result.error ? `\n${result.error.message}` : ""}`,
  };
}

function ok(result: Run, what: string): Run {
  assert.equal(result.status, 0, `${what} failed:\n${result.stdout}\n${result.stderr}`);
  return result;
}

const denoJson = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8"));
const subpaths = Object.keys(denoJson.exports as Record<string, string>)
  .filter((key) => key !== ".")
  .map((key) => `edgepool${key.slice(1)}`);

/** Leases, a queued acquire, a timeout, close: the public surface at work, from the package. */
const SMOKE = `
import { AcquireTimeoutError, Pool, PoolClosedError, PoolError } from "edgepool";

const made = [];
const pool = new Pool({
  create: () => {
    const conn = { id: made.length + 1, closed: false };
    made.push(conn);
    return conn;
  },
  destroy: (conn) => { conn.closed = true; },
}, { max: 1 });
const first = await pool.acquire();
const firstId = first.value.id;
const queued = pool.acquire({ timeoutMs: 1000 });
await first.release();
const second = await queued;
const secondId = second.value.id;
const timedOut = await pool.acquire({ timeoutMs: 10 }).then(
  () => false,
  (e) => e instanceof AcquireTimeoutError && e instanceof PoolError,
);
await second.release();
const used = await pool.use((conn) => conn.id);
await pool.close();
const closed = await pool.acquire().then(() => false, (e) => e instanceof PoolClosedError);
const subpaths = {};
for (const name of ${JSON.stringify(subpaths)}) {
  subpaths[name] = await import(name).then(
    (m) => Object.keys(m).length > 0 ? "ok" : "no exports",
    (e) => String(e),
  );
}
console.log(JSON.stringify({
  firstId, secondId, used, timedOut, closed,
  destroyed: made.every((c) => c.closed),
  stats: pool.stats(),
  subpaths,
}));
`;

/** A TypeScript consumer: resolves the package's types (a wrong call must be an error). */
const CONSUMER = `
import { type Lease, Pool, type PoolStats } from "edgepool";

const pool = new Pool({ create: () => ({ n: 1 }) }, { max: 2 });
const lease: Lease<{ n: number }> = await pool.acquire({ timeoutMs: 1_000 });
const n: number = lease.value.n;
await lease.release();
const stats: PoolStats = pool.stats();
// @ts-expect-error: timeoutMs is a number; if the types did not resolve this would not error
await pool.acquire({ timeoutMs: "5" });
await pool.close();
export { n, stats };
`;

describe("npm package", () => {
  let dir = "";
  let tarball = "";
  let app = "";

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "edgepool-pack-"));
    const pkg = join(dir, "package");
    ok(run(NODE, [join(ROOT, "scripts", "build_npm.ts"), "--package-dir", pkg]), "build_npm.ts");
    const packed = ok(
      run("npm", ["pack", pkg, "--ignore-scripts", "--json", "--pack-destination", dir], dir),
      "npm pack",
    );
    const [{ filename }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("[")));
    tarball = join(dir, filename);
    // A fresh project with the tarball unpacked where npm would install it.
    app = join(dir, "app");
    const installed = join(app, "node_modules", "edgepool");
    mkdirSync(installed, { recursive: true });
    ok(run("tar", ["-xzf", tarball, "-C", installed, "--strip-components=1"]), "tar");
    writeFileSync(
      join(app, "package.json"),
      '{ "name": "app", "private": true, "type": "module" }',
    );
    writeFileSync(join(app, "smoke.mjs"), SMOKE);
    writeFileSync(join(app, "consumer.ts"), CONSUMER);
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("scripts/check_exports.ts finds deno.json and package.json exports in step", () => {
    const result = ok(run(NODE, [join(ROOT, "scripts", "check_exports.ts")]), "check_exports");
    assert.match(result.stdout, /exports agree/);
  });

  it("scripts/check_exports.ts fails when an export is missing on either side", () => {
    const copy = join(dir, "exports-copy");
    mkdirSync(join(copy, "scripts"), { recursive: true });
    for (const f of ["scripts/_npm_exports.ts", "scripts/check_exports.ts"]) {
      cpSync(join(ROOT, f), join(copy, f));
    }
    for (const source of Object.values(denoJson.exports as Record<string, string>)) {
      mkdirSync(join(copy, source, ".."), { recursive: true });
      writeFileSync(join(copy, source), "");
    }
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    const check = (deno: unknown, npm: unknown) => {
      writeFileSync(join(copy, "deno.json"), JSON.stringify(deno));
      writeFileSync(join(copy, "package.json"), JSON.stringify(npm));
      return run(NODE, [join(copy, "scripts", "check_exports.ts")], copy);
    };
    ok(check(denoJson, pkg), "check_exports on an exact copy");

    const lacking = structuredClone(pkg);
    delete lacking.exports[Object.keys(lacking.exports).at(-1)!];
    const missing = check(denoJson, lacking);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /package\.json exports lacks/);

    const extra = structuredClone(pkg);
    extra.exports["./extra"] = { types: "./dist/extra.d.ts", default: "./dist/extra.js" };
    const surplus = check(denoJson, extra);
    assert.equal(surplus.status, 1);
    assert.match(surplus.stderr, /package\.json exports has "\.\/extra", deno\.json does not/);

    const wrong = structuredClone(pkg);
    wrong.exports["."] = "./mod.ts";
    assert.match(check(denoJson, wrong).stderr, /exports "\." is "\.\/mod\.ts", expected/);
  });

  it("the tarball holds the build of every entry point and no sources or tests", () => {
    const files = ok(run("tar", ["-tzf", tarball]), "tar -t").stdout.split("\n")
      .filter(Boolean).map((f) => f.replace(/^package\//, ""));
    for (const source of Object.values(denoJson.exports as Record<string, string>)) {
      const base = `dist/${source.slice(2, -3)}`;
      for (const ext of [".js", ".js.map", ".d.ts"]) {
        assert.ok(files.includes(base + ext), `${base}${ext} is packed`);
      }
    }
    for (const name of ["package.json", "README.md", "LICENSE"]) assert.ok(files.includes(name));
    const stray = files.filter((f) => !f.startsWith("dist/") && !/^[A-Z]|^package\.json$/.test(f));
    assert.deepEqual(stray, []);
  });

  it("publint finds nothing to report in the tarball", () => {
    const result = ok(run(bin("publint"), ["run", tarball, "--strict"]), "publint");
    assert.match(result.stdout, /All good/);
  });

  it("@arethetypeswrong/cli finds no problem (esm-only profile)", () => {
    ok(run(bin("attw"), [tarball, "--profile", "esm-only", "--format", "table-flipped"]), "attw");
  });

  const runtimes = [
    { name: "Node 24", command: bin("node"), args: ["smoke.mjs"] },
    { name: "Bun", command: bin("bun"), args: ["smoke.mjs"] },
    { name: "Deno", command: bin("deno"), args: ["run", "--allow-read", "smoke.mjs"] },
    // The system's Node (20 on CI), the oldest that package.json "engines" accepts.
    { name: "the Node on PATH", command: "node", args: ["smoke.mjs"] },
  ];
  for (const { name, command, args } of runtimes) {
    it(`the installed package runs under ${name}`, () => {
      const result = ok(run(command, args, app), `${name}: ${command} ${args.join(" ")}`);
      const out = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
      assert.deepEqual(
        [out.firstId, out.secondId, out.used, out.timedOut, out.closed, out.destroyed],
        [1, 1, 1, true, true, true],
      );
      assert.equal(out.stats.total, 0);
      assert.equal(out.stats.created, 1);
      for (const path of subpaths) assert.equal(out.subpaths[path], "ok", `${path} imports`);
    });
  }

  it("a TypeScript consumer gets the package's types (moduleResolution nodenext)", () => {
    // Without the setup's temp project, `app` is "" and the write would land in the repository.
    assert.notEqual(app, "", "the package was not built and installed (see the setup's error)");
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "esnext",
          module: "nodenext",
          moduleResolution: "nodenext",
          lib: ["esnext", "dom"],
          types: [],
          strict: true,
          noEmit: true,
        },
        files: ["consumer.ts"],
      }),
    );
    ok(
      run(NODE, [
        join(ROOT, "node_modules", "typescript", "bin", "tsc"),
        "-p",
        app,
        "--pretty",
        "false",
      ]),
      "tsc on the consumer",
    );
  });
});
