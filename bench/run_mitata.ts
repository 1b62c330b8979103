/**
 * The cases of `_cases.ts` under mitata, for the runtimes `deno bench` does not cover:
 *
 * ```sh
 * node_modules/.bin/bun bench/run_mitata.ts
 * node_modules/.bin/node bench/run_mitata.ts
 * ```
 *
 * Prints one table: time per call of the bench function (median and mean), time per
 * acquire+release, and the ratio of medians to the floor of its group. `--filter <regexp>`
 * runs only the benches whose "group: name" matches.
 *
 * @module
 */

import { bench, group, run } from "mitata";
import { type Case, CASES, closeAll, fixtures } from "./_cases.ts";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const at = args.indexOf("--filter");
const filter = at >= 0 ? new RegExp(args[at + 1]) : undefined;

const label = (c: Case) => `${c.group}: ${c.name}`;
const chosen = CASES.filter((c) => filter === undefined || c.baseline || filter.test(label(c)));
const built = await fixtures(chosen);

const groups = [...new Set(chosen.map((c) => c.group))];
for (const name of groups) {
  group(name, () => {
    chosen.forEach((c, i) => {
      if (c.group === name) bench(label(c), built[i].fn);
    });
  });
}
const { benchmarks } = await run({ format: "quiet" });
await closeAll(built);

const stats = new Map<string, { p50: number; avg: number }>();
for (const trial of benchmarks) {
  const s = trial.runs[0]?.stats;
  if (s === undefined) throw new Error(`${trial.alias} failed: ${String(trial.runs[0]?.error)}`);
  stats.set(trial.alias, s);
}

function time(ns: number): string {
  if (ns < 1e3) return `${ns.toFixed(1)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${(ns / 1e6).toFixed(2)} ms`;
}

const rows: string[][] = [];
for (const name of groups) {
  const cases = chosen.filter((c) => c.group === name);
  const floor = stats.get(label(cases.find((c) => c.baseline) ?? cases[0]))!;
  rows.push([`**${name}**`, "", "", "", ""]);
  for (const c of cases) {
    const s = stats.get(label(c))!;
    rows.push([
      c.name,
      time(s.p50),
      time(s.avg),
      time(s.p50 / c.ops),
      c.baseline ? "1.00× (floor)" : `${(s.p50 / floor.p50).toFixed(2)}×`,
    ]);
  }
}

const head = ["bench", "median/iter", "mean/iter", "median/op", "× floor (medians)"];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) =>
  `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`;
console.log(`\n${navigator.userAgent}, mitata; op = one acquire+release\n`);
console.log(line(head));
console.log(line(widths.map((w) => "-".repeat(w))));
for (const row of rows) console.log(line(row));
