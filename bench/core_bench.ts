/**
 * Core micro benches: edgepool against a hand-written floor (the baseline of every group),
 * generic-pool and tarn, on uncontended and contended acquire+release, with and without a
 * deadline or an `AbortSignal`, plus the cost of leak detection and of one reaper tick.
 * The cases live in `_cases.ts`, shared with `run_mitata.ts` (Bun, Node).
 *
 * Run: `deno bench -A bench/core_bench.ts`
 *
 * @module
 */

import { CASES, closeAll, fixtures } from "./_cases.ts";

const built = await fixtures(CASES);

CASES.forEach((c, i) => {
  Deno.bench({ group: c.group, name: c.name, baseline: c.baseline, fn: built[i].fn });
});

// Pools unref their timers, except tarn's reaper: close everything when the benches are done.
globalThis.addEventListener("beforeunload", () => void closeAll(built), { once: true });
