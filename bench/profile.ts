/**
 * Profiling helper for one bench case: runs its function in a loop (no harness around it) for
 * a while, so `node --cpu-prof` sees only the case, then summarizes a `.cpuprofile`: self time
 * by function and by source line.
 *
 * ```sh
 * node_modules/.bin/node --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts \
 *   "1000 tasks on max 10" "edgepool" 5000
 * node_modules/.bin/node bench/profile.ts --top /tmp/prof/CPU.*.cpuprofile [file-filter]
 * ```
 *
 * The first form prints the time per operation of the loop; the second the 25 hottest
 * functions, then the hottest lines of files whose name contains `file-filter` (default
 * `pool.ts`).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { CASES, closeAll, fixtures } from "./_cases.ts";
import { ARGS, option } from "./_env.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  positionTicks?: { line: number; ticks: number }[];
}

function top(path: string, filter: string): void {
  const profile = JSON.parse(readFileSync(path, "utf8")) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + profile.timeDeltas[i]));
  const total = profile.timeDeltas.reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  const byLine = new Map<string, number>();
  for (const node of profile.nodes) {
    const t = self.get(node.id) ?? 0;
    const file = node.callFrame.url.split("/").pop() ?? "";
    const name = `${node.callFrame.functionName || "(anonymous)"} ${file}:${
      node.callFrame.lineNumber + 1
    }`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + t);
    const ticks = node.positionTicks ?? [];
    const sum = ticks.reduce((a, p) => a + p.ticks, 0);
    if (!file.includes(filter) || sum === 0) continue;
    for (const p of ticks) {
      const key = `${file}:${p.line} (${node.callFrame.functionName || "anonymous"})`;
      byLine.set(key, (byLine.get(key) ?? 0) + (t * p.ticks) / sum);
    }
  }
  const show = (title: string, m: Map<string, number>) => {
    console.log(`\n${title} (self time, % of ${(total / 1000).toFixed(0)} ms)`);
    for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
      console.log(`${(t / total * 100).toFixed(2).padStart(6)}%  ${k}`);
    }
  };
  show("functions", byFunction);
  show(`lines of *${filter}*`, byLine);
}

const profilePath = option("top");
if (profilePath !== undefined) {
  top(profilePath, ARGS[ARGS.indexOf("--top") + 2] ?? "pool.ts");
} else {
  const [group, name, ms = "5000"] = ARGS;
  const chosen = CASES.filter((c) => c.group === group && c.name === name);
  if (chosen.length !== 1) {
    throw new Error(
      `no case "${group}" / "${name}"; groups: ${
        [...new Set(CASES.map((c) => c.group))].join(" | ")
      }`,
    );
  }
  const built = await fixtures(chosen);
  const fn = built[0].fn;
  const t0 = performance.now();
  const end = t0 + Number(ms);
  let calls = 0;
  while (performance.now() < end) {
    await fn();
    calls++;
  }
  const nsPerOp = (performance.now() - t0) * 1e6 / calls / chosen[0].ops;
  console.log(`${group} / ${name}: ${calls} calls, ${nsPerOp.toFixed(1)} ns/op`);
  await closeAll(built);
}
