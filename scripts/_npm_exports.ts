/**
 * The npm package's entry points, derived from the JSR ones: every key of deno.json `exports`
 * is a key of package.json `exports`, whose `types` and `default` point at the built files in
 * `dist/`, which mirror the source tree (`./src/factories/postgres.ts` becomes
 * `./dist/src/factories/postgres.js` and `.d.ts`).
 *
 * Shared by `build_npm.ts` and `check_exports.ts`. Only `node:` built-ins and erasable
 * TypeScript: Node 24 runs it as is.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root directory. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** One entry of package.json `exports`. */
export interface NpmTarget {
  types: string;
  default: string;
}

/** Reads a JSON file of the repository. */
export function readJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(ROOT, name), "utf8"));
}

/** deno.json `exports` as an object (a string means `{ ".": string }`). */
export function denoExports(): Record<string, string> {
  const exports = readJson("deno.json").exports;
  if (typeof exports === "string") return { ".": exports };
  if (exports === null || typeof exports !== "object") {
    throw new Error('deno.json has no "exports"');
  }
  return exports as Record<string, string>;
}

/** Where the build puts the output of a source file: `./mod.ts` → `./dist/mod.js`. */
export function distPath(source: string, ext: ".js" | ".d.ts"): string {
  if (!/^\.\/.+\.ts$/.test(source)) {
    throw new Error(`deno.json export target "${source}" is not a ./relative .ts file`);
  }
  return `./dist/${source.slice(2, -3)}${ext}`;
}

/** The package.json `exports` that match deno.json's, in the same order. */
export function npmExports(
  deno: Record<string, string> = denoExports(),
): Record<string, NpmTarget> {
  const out: Record<string, NpmTarget> = {};
  for (const [key, source] of Object.entries(deno)) {
    out[key] = { types: distPath(source, ".d.ts"), default: distPath(source, ".js") };
  }
  return out;
}

/**
 * What differs between deno.json `exports` and package.json `exports`/`main`/`types`, one line
 * per problem; empty when they agree.
 */
export function exportProblems(): string[] {
  const problems: string[] = [];
  let deno: Record<string, string>;
  try {
    deno = denoExports();
  } catch (error) {
    return [(error as Error).message];
  }
  for (const [key, source] of Object.entries(deno)) {
    if (!existsSync(join(ROOT, source))) {
      problems.push(`deno.json exports "${key}": ${source} does not exist`);
    }
  }
  let wanted: Record<string, NpmTarget>;
  try {
    wanted = npmExports(deno);
  } catch (error) {
    return [...problems, (error as Error).message];
  }
  const pkg = readJson("package.json");
  const actual = pkg.exports;
  if (actual === null || typeof actual !== "object" || Array.isArray(actual)) {
    return [...problems, 'package.json has no "exports" object'];
  }
  const npm = actual as Record<string, unknown>;
  for (const key of Object.keys(wanted)) {
    if (!(key in npm)) problems.push(`package.json exports lacks "${key}" (deno.json has it)`);
  }
  for (const key of Object.keys(npm)) {
    if (!(key in wanted)) problems.push(`package.json exports has "${key}", deno.json does not`);
  }
  for (const [key, target] of Object.entries(wanted)) {
    if (!(key in npm)) continue;
    const got = JSON.stringify(npm[key]);
    if (got !== JSON.stringify(target)) {
      problems.push(
        `package.json exports "${key}" is ${got}, expected ${JSON.stringify(target)}`,
      );
    }
  }
  const root = wanted["."];
  if (root) {
    if (pkg.main !== root.default) {
      problems.push(
        `package.json "main" is ${JSON.stringify(pkg.main)}, expected "${root.default}"`,
      );
    }
    if (pkg.types !== root.types) {
      problems.push(
        `package.json "types" is ${JSON.stringify(pkg.types)}, expected "${root.types}"`,
      );
    }
  }
  return problems;
}

/**
 * Rewrites package.json `exports`, `main` and `types` from deno.json, keeping every other key,
 * its order and the file's two-space indentation. Returns true when the file changed.
 */
export function writeNpmExports(): boolean {
  const path = join(ROOT, "package.json");
  const before = readFileSync(path, "utf8");
  const pkg = JSON.parse(before) as Record<string, unknown>;
  const wanted = npmExports();
  const next: Record<string, unknown> = {};
  // New keys go after "type" (or at the end), existing ones stay where they are.
  const fresh = { main: wanted["."]?.default, types: wanted["."]?.types, exports: wanted };
  for (const [key, value] of Object.entries(pkg)) {
    next[key] = key in fresh ? fresh[key as keyof typeof fresh] : value;
    if (key === "type") {
      for (const [k, v] of Object.entries(fresh)) if (!(k in pkg)) next[k] = v;
    }
  }
  for (const [k, v] of Object.entries(fresh)) if (!(k in next)) next[k] = v;
  const after = `${JSON.stringify(next, null, 2)}\n`;
  if (after === before) return false;
  writeFileSync(path, after);
  return true;
}
