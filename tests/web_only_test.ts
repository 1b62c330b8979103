/**
 * `src/` (less `src/factories/` and `src/metrics/`, which may use a runtime's or a vendor's
 * API) uses web-standard APIs only: it type-checks with TypeScript against the web libraries
 * alone (`esnext` plus `dom`, and `esnext` plus `webworker`, the globals of an edge runtime),
 * with no Deno, Node or Bun types. The check itself is checked: a copy of the sources that
 * reaches for `Deno.env`, `process.env`, `Bun` or `node:fs` must fail it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  appendFileSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Folders of src/ that may use runtime- or vendor-specific APIs. */
const NOT_WEB_ONLY = ["factories", "metrics"];

/** The web-only sources under `srcDir`, as paths relative to it. */
function webOnlySources(srcDir: string): string[] {
  return readdirSync(srcDir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !NOT_WEB_ONLY.some((d) => f.startsWith(`${d}/`)))
    .sort();
}

/** Runs `tsc --noEmit` on the web-only sources of `srcDir`; returns its exit code and output. */
function typeCheck(srcDir: string, lib: string[]): { status: number | null; output: string } {
  const deno = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8"));
  const dir = mkdtempSync(join(tmpdir(), "edgepool-web-only-"));
  try {
    const tsconfig = join(dir, "tsconfig.json");
    writeFileSync(
      tsconfig,
      JSON.stringify({
        compilerOptions: {
          ...deno.compilerOptions, // strict and the rest, as deno check uses them
          target: "esnext",
          module: "esnext",
          moduleResolution: "bundler",
          lib,
          types: [], // no @types/node, nor anything else found in node_modules/@types
          typeRoots: [],
          noEmit: true,
          allowImportingTsExtensions: true,
          skipLibCheck: true,
        },
        files: webOnlySources(srcDir).map((f) => join(srcDir, f)),
      }),
    );
    const result = spawnSync(
      join(ROOT, "node_modules", ".bin", "node"),
      [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", tsconfig, "--pretty", "false"],
      { encoding: "utf8" },
    );
    return {
      status: result.status,
      output: `${result.stdout}${result.stderr}${result.error ?? ""}`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("src/ uses web-standard APIs only", () => {
  const copies: string[] = [];
  after(() => {
    for (const dir of copies) rmSync(dir, { recursive: true, force: true });
  });

  it("checks every module of src/ except factories/ and metrics/", () => {
    const files = webOnlySources(join(ROOT, "src"));
    for (const core of ["pool.ts", "lease.ts", "options.ts", "errors.ts", "_timers.ts"]) {
      assert.ok(files.includes(core), `${core} is checked`);
    }
    assert.ok(!files.some((f) => f.startsWith("factories/") || f.startsWith("metrics/")));
  });

  it("type-checks against lib esnext + dom, with no Deno, Node or Bun types", () => {
    const { status, output } = typeCheck(join(ROOT, "src"), ["esnext", "dom"]);
    assert.equal(status, 0, output);
  });

  it("type-checks against lib esnext + webworker (an edge runtime's globals)", () => {
    const { status, output } = typeCheck(join(ROOT, "src"), ["esnext", "webworker"]);
    assert.equal(status, 0, output);
  });

  it("fails on a copy of src/pool.ts that uses Deno.env, process.env, Bun or node:fs", () => {
    const copy = mkdtempSync(join(tmpdir(), "edgepool-src-copy-"));
    copies.push(copy);
    cpSync(join(ROOT, "src"), copy, { recursive: true });
    appendFileSync(
      join(copy, "pool.ts"),
      [
        "",
        'export const fromDeno = Deno.env.get("HOME");',
        "export const fromNode = process.env.HOME;",
        "export const fromBun = Bun.version;",
        'export { readFileSync } from "node:fs";',
        "",
      ].join("\n"),
    );
    const { status, output } = typeCheck(copy, ["esnext", "dom"]);
    assert.notEqual(status, 0, "the check passed on a copy that uses runtime APIs");
    assert.match(output, /pool\.ts.*Cannot find name 'Deno'/);
    assert.match(output, /pool\.ts.*Cannot find name 'process'/);
    assert.match(output, /pool\.ts.*Cannot find name 'Bun'/);
    assert.match(output, /pool\.ts.*Cannot find (?:module|name) 'node:fs'/);
  });
});
