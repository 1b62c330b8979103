/**
 * A pool's stats in the Prometheus text exposition format (version 0.0.4), ready to be served
 * from a `/metrics` endpoint: gauges for current counts, counters (`_total`) for what happened
 * since the pool started, and a summary of acquire wait times in seconds. No dependency: it
 * reads `pool.stats()` and writes text.
 *
 * @module
 */

import type { PoolStats } from "../stats.ts";

/**
 * What {@linkcode prometheusText} needs of a pool: `Pool` has it.
 *
 * @example Several pools in one scrape
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { prometheusText, type StatsSource } from "@edgepool/pool/metrics/prometheus";
 * import assert from "node:assert/strict";
 *
 * await using primary = new Pool({ create: () => ({}) }, { max: 10 });
 * await using replica = new Pool({ create: () => ({}) }, { max: 20 });
 * // Each pool's samples are labelled with its key.
 * const pools: Record<string, StatsSource> = { primary, replica };
 * const text = prometheusText(pools);
 * assert.match(text, /^edgepool_resources_max\{pool="replica"\} 20$/m);
 * ```
 */
export interface StatsSource {
  /** A fresh snapshot. */
  stats(): PoolStats;
}

/**
 * Options of {@linkcode prometheusText}.
 *
 * @example
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { prometheusText, type PrometheusOptions } from "@edgepool/pool/metrics/prometheus";
 * import assert from "node:assert/strict";
 *
 * await using pool = new Pool({ create: () => ({}) });
 * const options: PrometheusOptions = { prefix: "myapp_db_", labels: { region: "eu" } };
 * assert.match(prometheusText(pool, options), /^myapp_db_resources_max\{region="eu"\} 10$/m);
 * ```
 */
export interface PrometheusOptions {
  /** Put before every metric name. @default {"edgepool_"} */
  prefix?: string;
  /** Labels added to every sample, e.g. `{ service: "api" }`. Values are escaped. */
  labels?: Readonly<Record<string, string>>;
  /** The label naming each pool when several are given as a record. @default {"pool"} */
  poolLabel?: string;
}

type Kind = "gauge" | "counter" | "summary";

interface Family {
  name: string;
  kind: Kind;
  help: string;
  /** Samples of one pool: name suffix, extra labels, value. */
  samples(s: PoolStats): [suffix: string, labels: string, value: number][];
}

const one = (value: (s: PoolStats) => number) => (s: PoolStats) =>
  [["", "", value(s)]] as [string, string, number][];

const FAMILIES: readonly Family[] = [
  {
    name: "resources",
    kind: "gauge",
    help: "Live resources, by state: idle, active (leased) or validating (checked or reset).",
    samples: (s) => [
      ["", 'state="idle"', s.idle],
      ["", 'state="active"', s.active],
      ["", 'state="validating"', s.validating],
    ],
  },
  {
    name: "resources_creating",
    kind: "gauge",
    help: "Resource creations in flight.",
    samples: one((s) => s.creating),
  },
  {
    name: "resources_destroying",
    kind: "gauge",
    help: "Resource destroys in flight, still counted against max.",
    samples: one((s) => s.destroying),
  },
  {
    name: "resources_min",
    kind: "gauge",
    help: "Resources kept warm (the min option).",
    samples: one((s) => s.min),
  },
  {
    name: "resources_max",
    kind: "gauge",
    help: "The most resources that may exist at once (the max option).",
    samples: one((s) => s.max),
  },
  {
    name: "acquires_waiting",
    kind: "gauge",
    help: "Acquires queued for a resource.",
    samples: one((s) => s.waiting),
  },
  {
    name: "hit_ratio",
    kind: "gauge",
    help: "Acquires served by an idle resource, over all acquires served (1 when none yet).",
    samples: one((s) => s.hitRate),
  },
  {
    name: "acquires_total",
    kind: "counter",
    help: "Leases handed out.",
    samples: one((s) => s.acquired),
  },
  {
    name: "releases_total",
    kind: "counter",
    help: "Leases given back (released or destroyed).",
    samples: one((s) => s.released),
  },
  {
    name: "acquire_timeouts_total",
    kind: "counter",
    help: "Acquires that timed out.",
    samples: one((s) => s.timedOut),
  },
  {
    name: "acquire_aborts_total",
    kind: "counter",
    help: "Acquires aborted by their signal.",
    samples: one((s) => s.aborted),
  },
  {
    name: "acquire_rejections_total",
    kind: "counter",
    help: "Acquires refused at once because the wait queue was full.",
    samples: one((s) => s.exhausted),
  },
  {
    name: "creates_total",
    kind: "counter",
    help: "Resources created.",
    samples: one((s) => s.created),
  },
  {
    name: "create_errors_total",
    kind: "counter",
    help: "Creates that threw, returned nothing or timed out.",
    samples: one((s) => s.createErrors),
  },
  {
    name: "destroys_total",
    kind: "counter",
    help: "Resources destroyed.",
    samples: one((s) => s.destroyed),
  },
  {
    name: "validation_failures_total",
    kind: "counter",
    help: "Validations that returned false, threw or timed out.",
    samples: one((s) => s.validationFailures),
  },
  {
    name: "acquire_wait_seconds",
    kind: "summary",
    help: "Time acquires waited for a resource, in seconds.",
    samples: (s) => [
      ["", 'quantile="0.5"', s.waitMs.p50 / 1000],
      ["", 'quantile="0.99"', s.waitMs.p99 / 1000],
      // The histogram's own total and count: both only grow, as a summary's must (avg × count
      // would not: avg is rounded, so it could step back between two scrapes).
      ["_sum", "", s.waitMs.sum / 1000],
      ["_count", "", s.waitMs.count],
    ],
  },
  {
    name: "acquire_wait_seconds_max",
    kind: "gauge",
    help: "The longest time an acquire waited for a resource, in seconds.",
    samples: one((s) => s.waitMs.max / 1000),
  },
];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const RESERVED = new Set(["state", "quantile"]);

/** Escapes a label value: backslash, double quote and line feed. */
function escapeValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

function formatValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

function checkLabelName(what: string, name: string, taken: Set<string>): void {
  if (!LABEL_NAME.test(name) || name.startsWith("__")) {
    throw new TypeError(
      `prometheusText(): ${what} ${JSON.stringify(name)} is not a valid label name`,
    );
  }
  if (taken.has(name)) {
    throw new TypeError(`prometheusText(): label ${JSON.stringify(name)} is used twice`);
  }
  taken.add(name);
}

function isSource(value: unknown): value is StatsSource {
  return typeof (value as StatsSource | null)?.stats === "function";
}

/**
 * Renders pools' stats in the Prometheus text format. Give one pool, or several as a record
 * whose keys become the `pool` label. Throws `TypeError` for an invalid prefix or label name,
 * a label used twice, or a record value that is not a pool.
 *
 * Families: `resources{state}`, `resources_creating`, `resources_destroying`, `resources_min`,
 * `resources_max`, `acquires_waiting`, `hit_ratio` and `acquire_wait_seconds_max` (gauges);
 * `acquires_total`, `releases_total`, `acquire_timeouts_total`, `acquire_aborts_total`,
 * `acquire_rejections_total`, `creates_total`, `create_errors_total`, `destroys_total`,
 * `validation_failures_total` (counters); `acquire_wait_seconds` (a summary with the 0.5 and
 * 0.99 quantiles), each name after the prefix.
 *
 * @example Serve /metrics
 * ```ts
 * import { Pool } from "@edgepool/pool";
 * import { prometheusText } from "@edgepool/pool/metrics/prometheus";
 * import assert from "node:assert/strict";
 *
 * await using primary = new Pool({ create: () => ({}) }, { max: 4 });
 * await using replica = new Pool({ create: () => ({}) }, { max: 2 });
 * const text = prometheusText({ primary, replica }, { labels: { service: "api" } });
 * assert.match(text, /^edgepool_resources_max\{service="api",pool="replica"\} 2$/m);
 * const response = new Response(text, {
 *   headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
 * });
 * assert.equal(response.status, 200);
 * ```
 */
export function prometheusText(
  pools: StatsSource | Readonly<Record<string, StatsSource>>,
  options?: PrometheusOptions,
): string {
  if (options !== undefined && (options === null || typeof options !== "object")) {
    throw new TypeError(`prometheusText() options must be an object, received ${String(options)}`);
  }
  const prefix = options?.prefix ?? "edgepool_";
  if (typeof prefix !== "string" || (prefix !== "" && !METRIC_NAME.test(prefix))) {
    throw new TypeError(
      `prometheusText(): prefix ${JSON.stringify(prefix)} cannot start a metric name`,
    );
  }
  const taken = new Set(RESERVED);
  let common = "";
  for (const [name, value] of Object.entries(options?.labels ?? {})) {
    checkLabelName("label", name, taken);
    if (typeof value !== "string") {
      throw new TypeError(
        `prometheusText(): label ${name} must be a string, received ${typeof value}`,
      );
    }
    common += `${common === "" ? "" : ","}${name}="${escapeValue(value)}"`;
  }

  // Each pool: its label text (common labels, then its name) and one snapshot for all families.
  const snapshots: [labels: string, stats: PoolStats][] = [];
  if (isSource(pools)) {
    // Unused for one pool, but a bad one is still a mistake to report.
    if (options?.poolLabel !== undefined) {
      checkLabelName("poolLabel", options.poolLabel, new Set(taken));
    }
    snapshots.push([common, pools.stats()]);
  } else if (pools !== null && typeof pools === "object") {
    const poolLabel = options?.poolLabel ?? "pool";
    checkLabelName("poolLabel", poolLabel, taken);
    for (const [name, pool] of Object.entries(pools)) {
      if (!isSource(pool)) {
        throw new TypeError(`prometheusText(): ${JSON.stringify(name)} is not a pool`);
      }
      const label = `${poolLabel}="${escapeValue(name)}"`;
      snapshots.push([common === "" ? label : `${common},${label}`, pool.stats()]);
    }
  } else {
    throw new TypeError("prometheusText() needs a pool or a record of pools");
  }

  const lines: string[] = [];
  for (const family of FAMILIES) {
    const name = prefix + family.name;
    lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.kind}`);
    for (const [labels, stats] of snapshots) {
      for (const [suffix, extra, value] of family.samples(stats)) {
        const all = labels === "" ? extra : extra === "" ? labels : `${labels},${extra}`;
        lines.push(`${name}${suffix}${all === "" ? "" : `{${all}}`} ${formatValue(value)}`);
      }
    }
  }
  return lines.join("\n") + "\n";
}
