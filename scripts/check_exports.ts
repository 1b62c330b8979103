/**
 * Fails when the npm entry points diverge from the JSR ones: every key of deno.json `exports`
 * must have a package.json `exports` entry pointing at its built files in `dist/` (and vice
 * versa), and `main`/`types` must be those of `"."`.
 *
 * Usage: node_modules/.bin/node scripts/check_exports.ts [--fix]
 *   --fix   rewrite package.json `exports`, `main` and `types` from deno.json (other keys kept)
 *
 * Only `node:` built-ins and erasable TypeScript: Node 24 runs this file as is.
 */
import { denoExports, exportProblems, writeNpmExports } from "./_npm_exports.ts";

const args = process.argv.slice(2);
if (args.some((a) => a !== "--fix")) {
  console.error("usage: node scripts/check_exports.ts [--fix]");
  process.exit(2);
}
if (args.includes("--fix") && writeNpmExports()) {
  console.log("package.json: exports, main and types rewritten from deno.json");
}
const problems = exportProblems();
if (problems.length > 0) {
  for (const p of problems) console.error(`error: ${p}`);
  const fixable = problems.some((p) => p.startsWith("package.json"));
  const hint = fixable ? "; to fix package.json: node scripts/check_exports.ts --fix" : "";
  console.error(`${problems.length} problem(s)${hint}`);
  process.exit(1);
}
console.log(`exports agree: ${Object.keys(denoExports()).join(", ")}`);
