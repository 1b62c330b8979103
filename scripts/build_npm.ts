/**
 * Builds the npm package from the sources: one ESM file per entry point of deno.json
 * `exports` (esbuild: bundled, code shared between entry points in `dist/_chunks/`, npm
 * dependencies and `node:`/`bun:` modules left as imports, linked source maps), plus `.d.ts`
 * files from `tsc --emitDeclarationOnly`, mirroring the source tree so that each `.js` has its
 * `.d.ts` beside it (`dist/mod.js`, `dist/mod.d.ts`, `dist/src/factories/postgres.js`, ...).
 *
 * package.json `exports` must match deno.json's first (see `scripts/check_exports.ts`).
 *
 * Usage: node_modules/.bin/node scripts/build_npm.ts [--package-dir DIR]
 *   (no option)         build into ./dist
 *   --package-dir DIR   make DIR a complete package to pack or publish: package.json,
 *                       README.md, LICENSE and DIR/dist (the repository's dist/ is untouched)
 *
 * Only `node:` built-ins, esbuild and erasable TypeScript: Node 24 runs this file as is.
 */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { build } from "esbuild";
import { denoExports, exportProblems, ROOT } from "./_npm_exports.ts";

/** The syntax level of the build: class fields and `#private` stay native. */
const TARGET = "es2022";

function fail(message: string): never {
  console.error(`build_npm: ${message}`);
  process.exit(1);
}

function parseArgs(argv: string[]): { packageDir: string | undefined } {
  let packageDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--package-dir" && argv[i + 1]) packageDir = resolve(argv[++i]);
    else if (argv[i].startsWith("--package-dir=")) packageDir = resolve(argv[i].slice(14));
    else {
      console.error("usage: node scripts/build_npm.ts [--package-dir DIR]");
      process.exit(2);
    }
  }
  return { packageDir };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile())
    .sort();
}

/** The JavaScript: esbuild, one output per entry point, shared code in chunks. */
async function buildJs(sources: string[], outDir: string): Promise<void> {
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: sources,
    outbase: ".",
    outdir: outDir,
    bundle: true,
    // Without splitting, an entry point importing another's code would carry its own copy of
    // it, and `instanceof PoolError` would fail across entry points.
    splitting: true,
    chunkNames: "_chunks/[name]-[hash]",
    format: "esm",
    platform: "neutral",
    target: TARGET,
    packages: "external",
    sourcemap: "linked",
    legalComments: "inline",
    logLevel: "warning",
  });
  if (result.errors.length > 0) fail("esbuild failed");
}

/**
 * The declarations: tsc on a throw-away tsconfig. tsc keeps the sources' `.ts` import
 * specifiers in `.d.ts` files, so they are rewritten to `.js` afterwards: a consumer's
 * TypeScript maps `./pool.js` to `./pool.d.ts`.
 */
function buildDts(sources: string[], outDir: string): void {
  const dir = mkdtempSync(join(tmpdir(), "edgepool-dts-"));
  try {
    const config = {
      compilerOptions: {
        target: TARGET,
        module: "nodenext",
        moduleResolution: "nodenext",
        // The library's own code is web-standard; factories may also use Node's types.
        lib: ["esnext", "dom"],
        types: ["node"],
        typeRoots: [join(ROOT, "node_modules", "@types")],
        strict: true,
        declaration: true,
        emitDeclarationOnly: true,
        allowImportingTsExtensions: true,
        skipLibCheck: true,
        rootDir: ROOT,
        outDir,
      },
      files: sources.map((s) => join(ROOT, s)),
    };
    const tsconfig = join(dir, "tsconfig.json");
    writeFileSync(tsconfig, JSON.stringify(config, null, 2));
    const tsc = spawnSync(
      join(ROOT, "node_modules", ".bin", "node"),
      [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", tsconfig, "--pretty", "false"],
      { cwd: ROOT, encoding: "utf8" },
    );
    if (tsc.error) fail(`cannot run tsc: ${tsc.error.message}`);
    if (tsc.status !== 0) fail(`tsc failed:\n${tsc.stdout}${tsc.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const specifier = /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g;
  for (const file of filesUnder(outDir).filter((f) => f.endsWith(".d.ts"))) {
    const text = readFileSync(file, "utf8");
    const fixed = text.replace(specifier, "$1$2.js$3");
    if (fixed !== text) writeFileSync(file, fixed);
  }
}

const { packageDir } = parseArgs(process.argv.slice(2));
const problems = exportProblems();
if (problems.length > 0) {
  fail(`deno.json and package.json exports disagree:\n  ${problems.join("\n  ")}`);
}
const sources = Object.values(denoExports()).map((s) => s.slice(2));
const outDir = packageDir ? join(packageDir, "dist") : join(ROOT, "dist");
const started = performance.now();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
await buildJs(sources, outDir);
buildDts(sources, outDir);
if (packageDir) {
  for (const name of ["package.json", "README.md", "LICENSE"]) {
    copyFileSync(join(ROOT, name), join(packageDir, name));
  }
}
const files = filesUnder(outDir);
const bytes = files.reduce((sum, f) => sum + statSync(f).size, 0);
console.log(
  `built ${relative(process.cwd(), outDir) || "."}: ${sources.length} entry points, ` +
    `${files.length} files, ${(bytes / 1024).toFixed(1)} KiB in ` +
    `${((performance.now() - started) / 1000).toFixed(1)} s`,
);
