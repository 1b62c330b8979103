/**
 * The cases of `_cases.ts` timed with mitata's `measure()`, on any of the three runtimes:
 *
 * ```sh
 * node_modules/.bin/node --expose-gc bench/run_mitata.ts
 * node_modules/.bin/bun bench/run_mitata.ts
 * node_modules/.bin/deno run -A --v8-flags=--expose-gc bench/run_mitata.ts
 * ```
 *
 * Rounds are interleaved: each round times every case of a group back to back (starting each
 * round with a different case), so a burst of load from elsewhere hits a whole round rather
 * than one contender. A case's figure is the median over rounds of its per-round median; its
 * ratio is the median over rounds of (its median ÷ the floor's median in the same round), and
 * the spread is the lowest and highest of those per-round ratios.
 *
 * Options: `--filter <regexp>` (on "group: name"; a matching group keeps its floor),
 * `--rounds <n>` (default 5), `--time <ms>` per measurement (default 250),
 * `--json <path>` to write the results.
 *
 * @module
 */

import { measure } from "mitata";
import { type Case, CASES, closeAll, fixtures } from "./_cases.ts";
import {
  collect,
  count,
  machine,
  median,
  option,
  progress,
  RUNTIME,
  runtimeVersion,
  table,
  time,
  writeJson,
} from "./_env.ts";

/** One case's figures, as written to JSON (times in ns per call of the bench function). */
export interface CaseResult {
  group: string;
  name: string;
  baseline: boolean;
  /** Acquire+release (or items) per call. */
  ops: number;
  /** Per round: the median, mean, 25th and 75th percentile of the samples, and their count. */
  rounds: { p50: number; avg: number; p25: number; p75: number; samples: number }[];
  /** Median over rounds of the per-round medians. */
  p50: number;
  /** `p50 / ops`. */
  perOp: number;
  /** Median over rounds of the ratio to the group's floor in the same round. */
  ratio: number;
  ratioMin: number;
  ratioMax: number;
}

/** What `--json` writes. */
export interface CoreResults {
  kind: "core";
  runtime: string;
  version: string;
  harness: string;
  machine: ReturnType<typeof machine>;
  rounds: number;
  timeMs: number;
  gc: string;
  cases: CaseResult[];
}

const label = (c: Case) => `${c.group}: ${c.name}`;
const filterText = option("filter");
const filter = filterText === undefined ? undefined : new RegExp(filterText);
const rounds = count("rounds", 5);
const timeMs = count("time", 250);
const jsonPath = option("json");

const wanted = new Set(
  CASES.filter((c) => filter === undefined || filter.test(label(c))).map((c) => c.group),
);
const chosen = CASES.filter((c) =>
  wanted.has(c.group) && (filter === undefined || c.baseline || filter.test(label(c)))
);
const info = machine();
const gcKind = collect() ?? "none";
progress(
  `${RUNTIME} ${runtimeVersion()}: ${chosen.length} benches, ${rounds} rounds of ` +
    `${timeMs} ms each, GC ${gcKind}, load ${info.load}`,
);
const built = await fixtures(chosen);

// A slow case (the pooled map) gets fewer samples, so a round stays near `timeMs`.
const slow = new Set<number>();
for (let i = 0; i < chosen.length; i++) {
  const t0 = performance.now();
  await built[i].fn();
  if (performance.now() - t0 > 5) slow.add(i);
}

const groups = [...new Set(chosen.map((c) => c.group))];
const samples = chosen.map(() => [] as CaseResult["rounds"]);
const started = performance.now();
for (let r = 0; r < rounds; r++) {
  for (const group of groups) {
    const members = chosen.map((c, i) => [c, i] as const).filter(([c]) => c.group === group);
    for (let k = 0; k < members.length; k++) {
      const [, i] = members[(k + r) % members.length];
      const s = await measure(built[i].fn, {
        min_cpu_time: timeMs * 1e6,
        min_samples: slow.has(i) ? 4 : 12,
      });
      samples[i].push({
        p50: s.p50,
        avg: s.avg,
        p25: s.p25,
        p75: s.p75,
        samples: s.samples.length,
      });
    }
  }
  progress(
    `  round ${r + 1}/${rounds} done (${((performance.now() - started) / 1000).toFixed(0)} s)`,
  );
}
// Still at rest after every round: no case corrupted its pool on the way.
chosen.forEach((c, i) => {
  try {
    built[i].check();
  } catch (error) {
    throw new Error(`${label(c)} after the run: ${(error as Error).message}`);
  }
});
await closeAll(built);

const results: CaseResult[] = chosen.map((c, i) => {
  const floorIndex = chosen.findIndex((f) => f.group === c.group && f.baseline);
  const ratios = samples[i].map((s, r) => s.p50 / samples[floorIndex][r].p50);
  const p50 = median(samples[i].map((s) => s.p50));
  return {
    group: c.group,
    name: c.name,
    baseline: c.baseline === true,
    ops: c.ops,
    rounds: samples[i],
    p50,
    perOp: p50 / c.ops,
    ratio: median(ratios),
    ratioMin: Math.min(...ratios),
    ratioMax: Math.max(...ratios),
  };
});

const rows: string[][] = [];
for (const group of groups) {
  rows.push([`**${group}**`, "", "", "", ""]);
  for (const r of results.filter((x) => x.group === group)) {
    rows.push([
      r.name,
      time(r.p50),
      time(r.perOp),
      r.baseline ? "1.00× (floor)" : `${r.ratio.toFixed(2)}×`,
      r.baseline ? "" : `${r.ratioMin.toFixed(2)}–${r.ratioMax.toFixed(2)}`,
    ]);
  }
}
console.log(
  `\n${RUNTIME} ${runtimeVersion()}, mitata measure(), ${rounds} interleaved rounds; ` +
    `op = one acquire+release (map: one item)\n`,
);
console.log(table(["bench", "median/iter", "median/op", "× floor", "spread"], rows));

if (jsonPath !== undefined) {
  const out: CoreResults = {
    kind: "core",
    runtime: RUNTIME,
    version: runtimeVersion(),
    harness: "mitata measure()",
    machine: info,
    rounds,
    timeMs,
    gc: gcKind,
    cases: results,
  };
  writeJson(jsonPath, out);
  progress(`wrote ${jsonPath}`);
}
