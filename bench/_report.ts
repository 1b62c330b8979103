/**
 * Renders the results in `bench/results/*.json` as SVG charts (`bench/results/*.svg`) and as
 * the tables between the `bench:results` markers of the README's "Benchmarks" section. Every
 * figure there comes from these files, so the README never drifts from the last run; a file
 * that is missing (say, no PostgreSQL run yet) leaves its part out.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GROUPS } from "./_cases.ts";
import type { Machine, RuntimeName } from "./_env.ts";
import { median, time } from "./_env.ts";
import { type Bar, chart, colourOf, compact, type Group, type Panel } from "./_svg.ts";
import type { CoreResults } from "./run_mitata.ts";
import type { SpikeResults } from "./spike.ts";
import type { MemoryResults } from "./memory.ts";
import { PG, type PgResults, summarize } from "./_pg_results.ts";

/** Where results live. */
export const RESULTS_DIR: string = fileURLToPath(new URL("./results/", import.meta.url));
const README = fileURLToPath(new URL("../README.md", import.meta.url));
const START = "<!-- bench:results:start";
const END = "<!-- bench:results:end -->";
const RUNTIMES: RuntimeName[] = ["deno", "bun", "node"];
const TITLE: Record<RuntimeName, string> = { deno: "Deno", bun: "Bun", node: "Node" };

/** What `scripts/soak.ts` prints as its JSON line (the part we show). */
export interface SoakResult {
  runtime: string;
  ok: boolean;
  failures: string[];
  cycles: number;
  seconds: number;
  cyclesPerSecond: number;
  done: { release: number; abort: number; timeout: number; destroy: number };
  heap: { gc: string; warmMB: number; lastMB: number; growthMB: number; limitMB: number };
  timers: { liveMax: number; left: number };
  listeners: { left: number };
}

function read<T>(name: string): T | undefined {
  const path = `${RESULTS_DIR}${name}`;
  return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) as T : undefined;
}

function perRuntime<T>(prefix: string): Partial<Record<RuntimeName, T>> {
  const out: Partial<Record<RuntimeName, T>> = {};
  for (const rt of RUNTIMES) {
    const r = read<T>(`${prefix}-${rt}.json`);
    if (r !== undefined) out[rt] = r;
  }
  return out;
}

function mdTable(head: string[], rows: string[][], align?: ("l" | "r")[]): string {
  const a = align ?? head.map((_, i) => (i === 0 ? "l" : "r"));
  return [
    `| ${head.join(" | ")} |`,
    `| ${a.map((x) => (x === "l" ? ":--" : "--:")).join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

/** A time for an axis tick: 100 ns, 1 µs, 2.5 ms. */
function tick(ns: number): string {
  if (ns < 1e3) return `${+ns.toPrecision(3)} ns`;
  if (ns < 1e6) return `${+(ns / 1e3).toPrecision(3)} µs`;
  return `${+(ns / 1e6).toPrecision(3)} ms`;
}

const ratioText = (r: number, lo: number, hi: number) =>
  `${r.toFixed(2)}× (${lo.toFixed(2)}–${hi.toFixed(2)})`;

function machineLine(m: Machine, runtimes: Partial<Record<RuntimeName, string>>): string {
  const versions = RUNTIMES.filter((rt) => runtimes[rt] !== undefined)
    .map((rt) => `${TITLE[rt]} ${runtimes[rt]}`).join(", ");
  const commit = m.source === undefined ? "" : `; edgepool ${m.source}`;
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}${
    versions && `; ${versions}`
  }${commit}`;
}

// ---------------------------------------------------------------- core (cases 1–3, leak, reaper, map)

const CORE_GROUPS = [
  GROUPS.one,
  GROUPS.many,
  GROUPS.oneTimeout,
  GROUPS.manyTimeout,
  GROUPS.oneSignal,
  GROUPS.manySignal,
];

/** A table of groups × rows with one column per runtime: ratio (spread), the floor's time. */
function coreTable(core: Partial<Record<RuntimeName, CoreResults>>, groups: string[]): string {
  const rts = RUNTIMES.filter((rt) => core[rt] !== undefined);
  const rows: string[][] = [];
  for (const group of groups) {
    const names = [
      ...new Set(
        rts.flatMap((rt) => core[rt]!.cases.filter((c) => c.group === group))
          .map((c) => c.name),
      ),
    ];
    names.forEach((name, i) => {
      const cells = rts.map((rt) => {
        const c = core[rt]!.cases.find((x) => x.group === group && x.name === name);
        if (c === undefined) return "–";
        return c.baseline ? `**${time(c.perOp)}**/op` : ratioText(c.ratio, c.ratioMin, c.ratioMax);
      });
      rows.push([i === 0 ? `**${group}**` : "", name, ...cells]);
    });
  }
  return mdTable(["case", "pool", ...rts.map((rt) => TITLE[rt])], rows, [
    "l",
    "l",
    ...rts.map(() => "r" as const),
  ]);
}

function coreChart(r: CoreResults): string {
  const groups: Group[] = CORE_GROUPS.map((group) => ({
    label: group,
    bars: r.cases.filter((c) => c.group === group).map((c): Bar => {
      const perRound = c.rounds.map((s) => s.p50 / c.ops);
      return {
        label: c.name,
        value: c.perOp,
        low: Math.min(...perRound),
        high: Math.max(...perRound),
        text: c.baseline ? `${time(c.perOp)} (floor)` : `${time(c.perOp)} · ${c.ratio.toFixed(2)}×`,
      };
    }),
  }));
  return chart(
    [{
      title: `Acquire + release on ${TITLE[r.runtime as RuntimeName]} ${r.version}`,
      unit:
        `ns per acquire+release, median of ${r.rounds} interleaved rounds (whiskers: lowest–highest round; log scale)`,
      groups,
      log: true,
      format: tick,
    }],
    `edgepool bench · ${machineLine(r.machine, { [r.runtime]: r.version })} · ${
      r.machine.date.slice(0, 10)
    }`,
  );
}

function mapChart(core: Partial<Record<RuntimeName, CoreResults>>, m: Machine): string {
  const groups: Group[] = RUNTIMES.filter((rt) => core[rt] !== undefined).map((rt) => ({
    label: `${TITLE[rt]} ${core[rt]!.version}`,
    bars: core[rt]!.cases.filter((c) => c.group === GROUPS.map).map((c) => ({
      label: c.name,
      value: c.perOp,
      text: c.baseline ? `${time(c.perOp)} (floor)` : `${time(c.perOp)} · ${c.ratio.toFixed(2)}×`,
    })),
  }));
  return chart([{
    title: GROUPS.map,
    unit: "ns per item, median (linear scale)",
    groups,
    log: false,
    format: tick,
  }], `edgepool bench · ${machineLine(m, {})} · ${m.date.slice(0, 10)}`);
}

// ---------------------------------------------------------------- spike

function spikeSection(spikes: Partial<Record<RuntimeName, SpikeResults>>): [string, string] {
  const rts = RUNTIMES.filter((rt) => spikes[rt] !== undefined);
  const first = spikes[rts[0]]!;
  const span = (xs: number[]) => {
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    return lo === hi ? `${lo}` : `${lo}–${hi}`;
  };
  const parts: string[] = [];
  for (const [si, scenario] of first.scenarios.entries()) {
    const rows = scenario.rows.map((row, ri) => [
      row.name,
      rts.map((rt) => span(spikes[rt]!.scenarios[si].rows[ri].created)).join(" · "),
      rts.map((rt) => span(spikes[rt]!.scenarios[si].rows[ri].live)).join(" · "),
      ...rts.map((rt) => {
        const x = spikes[rt]!.scenarios[si].rows[ri];
        return `${x.waitP50Ms.toFixed(1)} / ${x.waitP99Ms.toFixed(1)}`;
      }),
    ]);
    parts.push(
      `**${scenario.name}** (create ${first.createMs} ms, min ${first.min}, max ${first.max}; ` +
        `${first.repeats} repeat${first.repeats === 1 ? "" : "s"} per runtime):\n\n` +
        mdTable(
          [
            "pool",
            `created (${rts.map((rt) => TITLE[rt]).join(" · ")})`,
            "live after",
            ...rts.map((rt) => `wait p50 / p99 ms, ${TITLE[rt]}`),
          ],
          rows,
        ),
    );
  }
  // The chart: Node if present, else the first runtime.
  const rt = spikes.node !== undefined ? "node" : rts[0];
  const s = spikes[rt]!;
  const panels: Panel[] = [
    {
      title: `Spike: resources created for the burst (${TITLE[rt]}, median of ${s.repeats})`,
      unit: "resources created after the warm-up (the floor never creates)",
      log: false,
      groups: s.scenarios.map((sc) => ({
        label: sc.name,
        bars: sc.rows.map((row) => ({
          label: row.name,
          value: Math.max(median(row.created), 0.05),
          text: `${median(row.created)} created → ${median(row.live)} live`,
        })),
      })),
    },
    {
      title: `Spike: p99 wait for a resource (${TITLE[rt]})`,
      unit: "ms (p99 over all repeats)",
      log: false,
      groups: s.scenarios.map((sc) => ({
        label: sc.name,
        bars: sc.rows.map((row) => ({
          label: row.name,
          value: row.waitP99Ms,
          text: `${row.waitP99Ms.toFixed(1)} ms (p50 ${row.waitP50Ms.toFixed(1)})`,
        })),
      })),
    },
  ];
  writeFileSync(
    `${RESULTS_DIR}spike.svg`,
    chart(
      panels,
      `edgepool bench · ${machineLine(s.machine, { [rt]: s.version })} · ${
        s.machine.date.slice(0, 10)
      }`,
    ),
  );
  return [parts.join("\n\n"), "![spike](bench/results/spike.svg)"];
}

// ---------------------------------------------------------------- memory and soak

function memorySection(
  mem: Partial<Record<RuntimeName, MemoryResults>>,
  soak: Partial<Record<RuntimeName, SoakResult>>,
): string {
  const rts = RUNTIMES.filter((rt) => mem[rt] !== undefined);
  const parts: string[] = [];
  if (rts.length > 0) {
    const first = mem[rts[0]]!;
    const kinds = [
      ["per idle resource", (r: MemoryResults["rows"][number]) => r.idle],
      ["per waiter", (r: MemoryResults["rows"][number]) => r.waiter.plain],
      ["per waiter, 30 s deadline", (r: MemoryResults["rows"][number]) => r.waiter.deadline],
      ["per waiter, AbortSignal", (r: MemoryResults["rows"][number]) => r.waiter.signal],
    ] as const;
    const rows = first.rows.map((row, i) => [
      row.name,
      ...kinds.map(([, get]) =>
        rts.map((rt) => {
          const v = get(mem[rt]!.rows[i]);
          return v === undefined ? "–" : String(v);
        }).join(" · ")
      ),
    ]);
    parts.push(
      `Heap bytes (${
        rts.map((rt) => TITLE[rt]).join(" · ")
      }), over ${first.count} of each after a ` +
        `forced GC, median of ${first.repeats} run${
          first.repeats === 1 ? "" : "s"
        }, each in a fresh process:\n\n` +
        mdTable(["pool", ...kinds.map(([k]) => k)], rows),
    );
    const rt = mem.node !== undefined ? "node" : rts[0];
    const m = mem[rt]!;
    const others = rts.filter((x) => x !== rt);
    const panels: Panel[] = [{
      title: `Heap per idle resource and per queued waiter (${TITLE[rt]} ${m.version})`,
      unit: `bytes, ${m.count} of each, after a forced GC; the other runtimes in brackets`,
      log: false,
      groups: kinds.map(([label, get]) => ({
        label,
        bars: m.rows.filter((r) => get(r) !== undefined).map((r) => ({
          label: r.name,
          value: Math.max(get(r)!, 0.5),
          text: `${get(r)} B` +
            (others.length === 0
              ? ""
              : ` (${
                others.map((x) =>
                  `${TITLE[x]} ${get(mem[x]!.rows.find((y) => y.name === r.name)!) ?? "–"}`
                ).join(" · ")
              })`),
        })),
      })),
    }];
    writeFileSync(
      `${RESULTS_DIR}memory.svg`,
      chart(
        panels,
        `edgepool bench · ${machineLine(m.machine, { [rt]: m.version })} · ${
          m.machine.date.slice(0, 10)
        }`,
      ),
    );
    parts.push("![memory](bench/results/memory.svg)");
  }
  const soakRts = RUNTIMES.filter((rt) => soak[rt] !== undefined);
  if (soakRts.length > 0) {
    parts.push(
      "Soak (`scripts/soak.ts`): acquire/release cycles on one pool, 10 % aborted while queued, 5 % " +
        "timed out, 1 % destroyed; heap after a forced GC, from the first checkpoint to the last:\n\n" +
        mdTable(
          [
            "runtime",
            "cycles",
            "cycles/s",
            "heap after warm-up",
            "heap at the end",
            "growth",
            "timers, listeners left",
            "verdict",
          ],
          soakRts.map((rt) => {
            const s = soak[rt]!;
            return [
              TITLE[rt],
              String(s.cycles),
              String(s.cyclesPerSecond),
              `${s.heap.warmMB} MB`,
              `${s.heap.lastMB} MB`,
              `${s.heap.growthMB} MB`,
              `${s.timers.left}, ${s.listeners.left}`,
              s.ok ? "flat, ok" : `FAILED: ${s.failures.join("; ")}`,
            ];
          }),
        ),
    );
  }
  return parts.join("\n\n");
}

// ---------------------------------------------------------------- PostgreSQL

/** edgepool's and the floor's main rows in their pool's main colour, the variants lighter. */
function pgColour(contender: string): string | undefined {
  if (contender === PG.edge) return colourOf("edgepool");
  if (contender === PG.floor) return colourOf("floor");
  return undefined;
}

function pgSection(pg: PgResults): string {
  const parts: string[] = [];
  const targets: string[][] = [];
  const panels: Panel[] = [];
  for (const r of pg.runtimes) {
    const sums = summarize(r.runs);
    const get = (phase: string, name: string) =>
      sums.find((s) => s.phase === phase && s.contender === name);
    const names = [...new Set(sums.map((s) => s.contender))];
    const rows = names.map((name) => {
      const short = get("short", name);
      const long = get("sustained", name);
      const once = get("per-query", name);
      const cell = (s: typeof short) =>
        s === undefined
          ? "–"
          : `${s.qps}${s.qpsMin === s.qpsMax ? "" : ` (${s.qpsMin}–${s.qpsMax})`}`;
      const lat = (s: typeof short) =>
        s === undefined ? "–" : `${s.p50Ms.toFixed(1)} / ${s.p99Ms.toFixed(1)}`;
      const cpu = (s: typeof short) => s?.cpuUs === undefined ? "–" : `${s.cpuUs.toFixed(1)}`;
      return [
        name,
        once !== undefined ? `${once.qps} (${pg.perQuerySeconds} s)` : cell(short),
        lat(once ?? short),
        cpu(once ?? short),
        cell(long),
        lat(long),
      ];
    });
    parts.push(
      `**${TITLE[r.runtime]} ${r.version}**:\n\n` +
        mdTable(
          [
            "contender",
            `q/s, ${pg.shortSeconds} s runs (median, spread of ${pg.rounds})`,
            "p50 / p99 ms",
            "client CPU µs/query",
            `q/s, ${pg.sustainedQueries} queries (median of ${pg.sustainedRounds ?? 1})`,
            "p50 / p99 ms",
          ],
          rows,
        ),
    );
    const edge = { short: get("short", PG.edge), long: get("sustained", PG.edge) };
    const check = (
      what: string,
      mine: number | undefined,
      theirs: number | undefined,
      goal: number | undefined,
      strict = false,
    ) => {
      if (mine === undefined || theirs === undefined) return;
      const ratio = mine / theirs;
      const ok = goal === undefined ? undefined : strict ? ratio > goal : ratio >= goal;
      targets.push([
        TITLE[r.runtime],
        what,
        goal === undefined ? "(reference)" : `${strict ? ">" : "≥"} ${goal}×`,
        `${ratio.toFixed(2)}×`,
        ok === undefined ? "" : ok ? "met" : "**missed**",
      ]);
    };
    check("vs pg-pool, short", edge.short?.qps, get("short", PG.pgPool)?.qps, 1);
    check("vs pg-pool, sustained", edge.long?.qps, get("sustained", PG.pgPool)?.qps, 1);
    check("vs postgres.js pool, short", edge.short?.qps, get("short", PG.postgres)?.qps, 0.8);
    check(
      "vs postgres.js pool, sustained",
      edge.long?.qps,
      get("sustained", PG.postgres)?.qps,
      1,
      true,
    );
    check(
      "vs a connection per query",
      edge.long?.qps ?? edge.short?.qps,
      get("per-query", PG.perQuery)?.qps,
      50,
    );
    check(
      "the same through pool.use(), vs pg-pool, short",
      get("short", PG.edgeUse)?.qps,
      get("short", PG.pgPool)?.qps,
      undefined,
    );
    check(
      "reset: rollback pipelined vs awaited, short",
      get("short", PG.edgePipelined)?.qps,
      get("short", PG.edgeRollback)?.qps,
      undefined,
    );
    check(
      "reset: rollback pipelined vs pg-pool, short",
      get("short", PG.edgePipelined)?.qps,
      get("short", PG.pgPool)?.qps,
      undefined,
    );
    check(
      "vs the floor over the same connections, short",
      edge.short?.qps,
      get("short", PG.floor)?.qps,
      undefined,
    );
    panels.push({
      title: `SELECT 1 from ${pg.workers} workers, max ${pg.max}: ${TITLE[r.runtime]} ${r.version}`,
      unit: "queries per second (log scale)",
      log: true,
      groups: [
        {
          label: `${pg.shortSeconds} s runs (median of ${pg.rounds}, whiskers: lowest–highest)`,
          bars: names.map((n) => get("short", n) ?? get("per-query", n)).filter((s) =>
            s !== undefined
          )
            .map((s) => ({
              label: s!.contender,
              colour: pgColour(s!.contender),
              value: s!.qps,
              low: s!.qpsMin,
              high: s!.qpsMax,
              text: `${compact(s!.qps)} q/s · p99 ${s!.p99Ms.toFixed(1)} ms`,
            })),
        },
        {
          label: `sustained: ${pg.sustainedQueries} queries each (median of ${
            pg.sustainedRounds ?? 1
          })`,
          bars: names.map((n) => get("sustained", n)).filter((s) => s !== undefined).map((s) => ({
            label: s!.contender,
            colour: pgColour(s!.contender),
            value: s!.qps,
            text: `${compact(s!.qps)} q/s · p99 ${s!.p99Ms.toFixed(1)} ms`,
          })),
        },
      ],
    });
  }
  writeFileSync(
    `${RESULTS_DIR}pg.svg`,
    chart(
      panels,
      `edgepool bench · ${machineLine(pg.machine, pg.machine.runtimes)} · ${
        pg.server.split(" ").slice(0, 2).join(" ")
      } · ${pg.machine.date.slice(0, 10)}`,
    ),
  );
  return [
    `${pg.server} on the same machine (a throwaway cluster, \`fsync\` off); ${pg.workers} workers, ` +
    `\`max\` ${pg.max}; latency is one query as a worker sees it, waiting for a connection included; ` +
    `run ${pg.machine.date.slice(0, 10)}, load average ${pg.machine.load} at the start.`,
    ...parts,
    'Targets (edgepool + postgres.js with `reset: "none"`, q/s ratio):\n\n' +
    mdTable(["runtime", "comparison", "target", "measured", ""], targets, [
      "l",
      "l",
      "r",
      "r",
      "l",
    ]),
    "![PostgreSQL throughput](bench/results/pg.svg)",
  ].join("\n\n");
}

// ---------------------------------------------------------------- the README part

/** Renders every chart and the README tables from the result files. */
export function render(): void {
  const core = perRuntime<CoreResults>("core");
  const spikes = perRuntime<SpikeResults>("spike");
  const mem = perRuntime<MemoryResults>("memory");
  const soak = perRuntime<SoakResult>("soak");
  const pg = read<PgResults>("pg.json");
  const coreRts = RUNTIMES.filter((rt) => core[rt] !== undefined);
  const out: string[] = [];
  const anyCore = coreRts.length > 0 ? core[coreRts[0]]! : undefined;
  if (anyCore !== undefined) {
    const versions: Partial<Record<RuntimeName, string>> = {};
    for (const rt of coreRts) versions[rt] = core[rt]!.version;
    out.push(
      `Measured on ${machineLine(anyCore.machine, versions)}, ${
        anyCore.machine.date.slice(0, 10)
      } ` +
        `(load average ${coreRts.map((rt) => core[rt]!.machine.load).join(" · ")} when each ` +
        `runtime's run started). Harness: mitata's \`measure()\`, ${anyCore.rounds} interleaved ` +
        `round${anyCore.rounds === 1 ? "" : "s"} of ${anyCore.timeMs} ms per bench.`,
      "#### Acquire and release (cases 1–3)\n\n" +
        "Each cell: the median time per acquire+release as a ratio to the floor's, the median " +
        "over rounds (lowest–highest round in brackets); the floor's row gives its time.\n\n" +
        coreTable(core, CORE_GROUPS),
      coreRts.map((rt) => {
        writeFileSync(`${RESULTS_DIR}core-${rt}.svg`, coreChart(core[rt]!));
        return `<details${rt === "node" ? " open" : ""}><summary>Chart: ${
          TITLE[rt]
        }</summary>\n\n` +
          `![acquire and release on ${TITLE[rt]}](bench/results/core-${rt}.svg)\n\n</details>`;
      }).join("\n"),
      "#### Leak detection\n\n" +
        "What capturing the acquirer's stack costs. edgepool captures it only while someone listens " +
        "(`onEvent` or a `pool.events()` reader), so the rows with a subscriber are the real cost; " +
        'compare them with the row "+ onEvent, leak detection off".\n\n' +
        coreTable(core, [GROUPS.oneLeak, GROUPS.manyLeak]),
      "#### Reaper tick\n\n" + coreTable(core, [GROUPS.reaper]),
      "#### Pooled map (case 7)\n\n" + coreTable(core, [GROUPS.map]),
    );
    writeFileSync(`${RESULTS_DIR}map.svg`, mapChart(core, anyCore.machine));
    out.push("![pooled map](bench/results/map.svg)");
  }
  if (RUNTIMES.some((rt) => spikes[rt] !== undefined)) {
    const [tables, image] = spikeSection(spikes);
    out.push("#### Spike (case 4)\n\n" + tables, image);
  }
  if (RUNTIMES.some((rt) => mem[rt] !== undefined || soak[rt] !== undefined)) {
    out.push("#### Memory (case 5)\n\n" + memorySection(mem, soak));
  }
  if (pg !== undefined) out.push("#### PostgreSQL (case 6)\n\n" + pgSection(pg));

  const text = readFileSync(README, "utf8");
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) {
    throw new Error(`README.md has no ${START} … ${END} region to fill`);
  }
  const head = text.slice(0, text.indexOf("\n", a) + 1);
  const generated = formatMarkdown(out.join("\n\n"));
  writeFileSync(README, `${head}\n${generated.trimEnd()}\n\n${text.slice(b)}`);
}

/** The markdown as `deno fmt` writes it (the repository's `check` task checks the README). */
function formatMarkdown(markdown: string): string {
  const deno = fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url));
  const r = spawnSync(deno, ["fmt", "--ext", "md", "-"], {
    input: markdown,
    encoding: "utf8",
    cwd: fileURLToPath(new URL("..", import.meta.url)),
  });
  if (r.status === 0) return r.stdout;
  console.error(`bench: deno fmt failed, README tables left unformatted: ${r.stderr ?? r.error}`);
  return markdown;
}
