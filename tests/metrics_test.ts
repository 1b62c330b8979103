import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  DataPointType,
  type Histogram,
  MeterProvider,
  type MetricData,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { instrumentPool } from "../src/metrics/otel.ts";
import { prometheusText } from "../src/metrics/prometheus.ts";
import {
  FakeFactory,
  flush,
  statsSnapshot,
  withFakeTime,
  withPool,
  withPoolSync,
} from "./_helpers.ts";

/** A reader the test collects from on demand. */
class TestReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

function otel() {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter("edgepool-test");
  const collect = async (): Promise<Map<string, MetricData>> => {
    const { resourceMetrics, errors } = await reader.collect();
    assert.deepEqual(errors, []);
    const out = new Map<string, MetricData>();
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) out.set(metric.descriptor.name, metric);
    }
    return out;
  };
  return { meter, collect, shutdown: () => provider.shutdown() };
}

const POOL = "db.client.connection.pool.name";

/** The value of the data point whose attributes are exactly `attributes`. */
function point(metric: MetricData | undefined, attributes: Record<string, string>): unknown {
  assert.ok(metric, "metric missing");
  const found = (metric.dataPoints as { attributes: object; value: unknown }[]).filter((p) => {
    try {
      assert.deepEqual(p.attributes, attributes);
      return true;
    } catch {
      return false;
    }
  });
  assert.equal(found.length, 1, `one point for ${JSON.stringify(attributes)}`);
  return found[0].value;
}

describe("instrumentPool() (OpenTelemetry)", () => {
  it("instrumentPool() observes connection counts by state, limits and pending requests", async () => {
    const { meter, collect, shutdown } = otel();
    await withPool({ min: 1, max: 3 }, async (pool) => {
      using _ = instrumentPool(pool, { meter, poolName: "main" });
      const a = await pool.acquire();
      const b = await pool.acquire();
      const c = await pool.acquire();
      await c.release();
      let metrics = await collect();
      const count = metrics.get("db.client.connection.count");
      assert.equal(count?.descriptor.unit, "{connection}");
      assert.equal(count?.dataPointType, DataPointType.SUM);
      assert.equal(point(count, { [POOL]: "main", "db.client.connection.state": "idle" }), 1);
      assert.equal(point(count, { [POOL]: "main", "db.client.connection.state": "used" }), 2);
      assert.equal(point(metrics.get("db.client.connection.max"), { [POOL]: "main" }), 3);
      assert.equal(point(metrics.get("db.client.connection.idle.min"), { [POOL]: "main" }), 1);
      const pending = metrics.get("db.client.connection.pending_requests");
      assert.equal(pending?.descriptor.unit, "{request}");
      assert.equal(point(pending, { [POOL]: "main" }), 0);

      const held = await pool.acquire();
      const queued = [pool.acquire(), pool.acquire()];
      metrics = await collect();
      assert.equal(
        point(metrics.get("db.client.connection.pending_requests"), { [POOL]: "main" }),
        2,
      );
      assert.equal(
        point(metrics.get("db.client.connection.count"), {
          [POOL]: "main",
          "db.client.connection.state": "used",
        }),
        3,
      );
      for (const lease of [a, b, held]) await lease.release();
      for (const q of queued) await (await q).release();
    });
    await shutdown();
  });

  it("instrumentPool() records create, wait and use times in seconds", async () => {
    await withFakeTime(async (clock) => {
      const { meter, collect, shutdown } = otel();
      const factory = new FakeFactory();
      factory.createPlan = [{ delayMs: 40 }];
      await withPool({}, async (pool) => {
        using _ = instrumentPool(pool, { meter, poolName: "db" });
        const acquiring = pool.acquire();
        await clock.tickAsync(40);
        const lease = await acquiring;
        await clock.tickAsync(250);
        await lease.release();
        await (await pool.acquire()).release(); // an idle hit: no wait, no use time
        await flush();
        const metrics = await collect();
        const histogram = (name: string) => {
          const metric = metrics.get(name);
          assert.equal(metric?.descriptor.unit, "s", name);
          assert.equal(metric?.dataPointType, DataPointType.HISTOGRAM, name);
          return point(metric, { [POOL]: "db" }) as Histogram;
        };
        const create = histogram("db.client.connection.create_time");
        assert.deepEqual([create.count, create.sum], [1, 0.04]);
        const wait = histogram("db.client.connection.wait_time");
        assert.deepEqual([wait.count, wait.sum, wait.max], [2, 0.04, 0.04]);
        const use = histogram("db.client.connection.use_time");
        assert.deepEqual([use.count, use.sum, use.max], [2, 0.25, 0.25]);
        // Buckets suited to seconds, not the SDK's millisecond defaults.
        assert.ok(create.buckets.boundaries.includes(0.05), String(create.buckets.boundaries));
        assert.ok(create.buckets.boundaries.length > 0 && create.buckets.boundaries[0] < 0.001);
      }, factory);
      await shutdown();
    });
  });

  it("instrumentPool() counts timeouts from the moment it was instrumented", async () => {
    await withFakeTime(async (clock) => {
      const { meter, collect, shutdown } = otel();
      await withPool({ max: 1 }, async (pool) => {
        const held = await pool.acquire();
        const timeOut = async () => {
          const rejected = assert.rejects(pool.acquire({ timeoutMs: 10 }));
          await clock.tickAsync(10);
          await rejected;
        };
        await timeOut(); // before: not counted
        using _ = instrumentPool(pool, { meter, poolName: "p" });
        await timeOut();
        await timeOut();
        const metrics = await collect();
        const timeouts = metrics.get("db.client.connection.timeouts");
        assert.equal(timeouts?.descriptor.unit, "{timeout}");
        assert.equal(timeouts?.dataPointType, DataPointType.SUM);
        assert.equal((timeouts as MetricData & { isMonotonic: boolean }).isMonotonic, true);
        assert.equal(point(timeouts, { [POOL]: "p" }), 2);
        await held.release();
      });
      await shutdown();
    });
  });

  it("instrumentPool() stops observing and recording on close() and on dispose", async () => {
    for (const stop of ["close", "dispose"] as const) {
      const { meter, collect, shutdown } = otel();
      await withPool({}, async (pool) => {
        const handle = instrumentPool(pool, { meter, poolName: stop });
        await pool.use(() => {});
        await flush();
        const waitCount = async () => {
          const metric = (await collect()).get("db.client.connection.wait_time");
          return metric === undefined || metric.dataPoints.length === 0
            ? 0
            : (point(metric, { [POOL]: stop }) as Histogram).count;
        };
        assert.equal(await waitCount(), 1);
        if (stop === "close") handle.close();
        else handle[Symbol.dispose]();
        handle.close(); // again: nothing happens
        await pool.use(() => {});
        const lease = await pool.acquire();
        await flush();
        assert.equal(await waitCount(), 1, "nothing recorded after stopping");
        // The SDK may repeat the last observation; it must not see the lease taken since.
        const count = (await collect()).get("db.client.connection.count");
        for (const p of count?.dataPoints ?? []) {
          const state = (p.attributes as Record<string, string>)["db.client.connection.state"];
          assert.equal(p.value, state === "idle" ? 1 : 0, `stale ${state}`);
        }
        await lease.release();
      });
      await shutdown();
    }
  });

  it("instrumentPool() keeps reporting after the pool closed (zero connections)", async () => {
    const { meter, collect, shutdown } = otel();
    await withPool({ min: 2 }, async (pool) => {
      using _ = instrumentPool(pool, { meter, poolName: "closing" });
      await pool.ready();
      await pool.close();
      const count = (await collect()).get("db.client.connection.count");
      assert.equal(point(count, { [POOL]: "closing", "db.client.connection.state": "idle" }), 0);
    });
    await shutdown();
  });

  it("instrumentPool() rejects a missing meter or pool name", async () => {
    const { meter, shutdown } = otel();
    await withPoolSync({}, (pool) => {
      assert.throws(() => instrumentPool(pool, undefined as never), TypeError);
      assert.throws(() => instrumentPool(pool, { meter: {} as never, poolName: "x" }), TypeError);
      assert.throws(() => instrumentPool(pool, { meter, poolName: "" }), TypeError);
      assert.throws(() => instrumentPool(pool, { meter, poolName: 1 as never }), TypeError);
    });
    await shutdown();
  });

  it("instrumentPool() rejects a bad bufferSize before registering anything", async () => {
    await withPoolSync({}, (pool) => {
      let callbacks = 0;
      let subscribers = 0;
      const meter = otel().meter;
      const counting = new Proxy(meter, {
        get: (target, key) =>
          key === "addBatchObservableCallback"
            ? (...args: Parameters<typeof meter.addBatchObservableCallback>) => {
              callbacks++;
              return target.addBatchObservableCallback(...args);
            }
            : Reflect.get(target, key),
      });
      const watched = {
        stats: () => pool.stats(),
        events: (o?: { bufferSize?: number }) => (subscribers++, pool.events(o)),
      };
      for (const bufferSize of [0, -1, 1.5, NaN]) {
        assert.throws(
          () => instrumentPool(watched, { meter: counting, poolName: "p", bufferSize }),
          { name: "RangeError", message: /^instrumentPool\(\) options\.bufferSize must be/ },
        );
      }
      assert.throws(
        () =>
          instrumentPool(watched, { meter: counting, poolName: "p", bufferSize: "big" as never }),
        { name: "TypeError", message: /bufferSize must be a whole number ≥ 1, received string/ },
      );
      assert.throws(
        () =>
          instrumentPool(watched, { meter: counting, poolName: "p", bufferSize: null as never }),
        { name: "TypeError", message: /received null$/ },
      );
      assert.deepEqual([callbacks, subscribers], [0, 0], "nothing registered, nothing subscribed");
      // A meter that refuses the callback leaves no event subscriber behind either.
      const refusing = new Proxy(meter, {
        get: (target, key) =>
          key === "addBatchObservableCallback"
            ? () => {
              throw new Error("meter closed");
            }
            : Reflect.get(target, key),
      });
      let ended = false;
      const tracked = {
        stats: () => pool.stats(),
        events: (o?: { bufferSize?: number }) => {
          const it = pool.events(o);
          const end = it.return!.bind(it);
          it.return = (v?: unknown) => ((ended = true), end(v));
          return it;
        },
      };
      assert.throws(
        () => instrumentPool(tracked, { meter: refusing, poolName: "p" }),
        /meter closed/,
      );
      assert.equal(ended, true, "the event stream was ended");
    });
  });
});

// ------------------------------------------------------------------------------- Prometheus

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_VALUE = String.raw`(?:[^"\\\n]|\\[\\"n])*`;
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="${LABEL_VALUE}"`;
const VALUE = String.raw`(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)`;
const HELP_LINE = new RegExp(String.raw`^# HELP (${NAME}) ((?:[^\\\n]|\\[\\n])*)$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)?\\})? (${VALUE})$`);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface ParsedFamily {
  type: string;
  help: string;
  samples: Sample[];
}

function unescape(value: string): string {
  return value.replace(/\\([\\"n])/g, (_, c) => (c === "n" ? "\n" : c));
}

/** Parses the text format strictly, checking its rules; fails the test on any violation. */
function parse(text: string): Map<string, ParsedFamily> {
  assert.ok(text.endsWith("\n"), "ends with a line feed");
  const families = new Map<string, ParsedFamily>();
  let current: string | undefined;
  let pendingHelp: [string, string] | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    let m: RegExpMatchArray | null;
    if ((m = line.match(HELP_LINE))) {
      assert.equal(families.has(m[1]), false, `HELP for ${m[1]} after its TYPE or twice`);
      pendingHelp = [m[1], m[2]];
    } else if ((m = line.match(TYPE_LINE))) {
      assert.equal(families.has(m[1]), false, `TYPE for ${m[1]} twice`);
      assert.equal(pendingHelp?.[0], m[1], `HELP right before TYPE for ${m[1]}`);
      families.set(m[1], { type: m[2], help: pendingHelp![1], samples: [] });
      current = m[1];
      pendingHelp = undefined;
    } else if ((m = line.match(SAMPLE_LINE))) {
      assert.ok(current, `sample before any TYPE: ${line}`);
      const family = families.get(current)!;
      const name = m[1];
      const allowed = family.type === "summary"
        ? [current, `${current}_sum`, `${current}_count`]
        : [current];
      assert.ok(allowed.includes(name), `${name} outside its family ${current} (not contiguous?)`);
      if (family.type === "counter") assert.match(name, /_total$/, "counters end in _total");
      const labels: Record<string, string> = {};
      for (const pair of (m[2] ?? "").match(new RegExp(LABEL, "g")) ?? []) {
        const eq = pair.indexOf("=");
        const key = pair.slice(0, eq);
        assert.equal(key in labels, false, `label ${key} twice in ${line}`);
        assert.equal(key.startsWith("__"), false, `reserved label ${key}`);
        labels[key] = unescape(pair.slice(eq + 2, -1));
      }
      const raw = m[3];
      const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
      family.samples.push({ name, labels, value });
    } else {
      assert.fail(`not a valid exposition line: ${JSON.stringify(line)}`);
    }
  }
  // No two samples of the exposition may share a name and label set.
  const seen = new Set<string>();
  for (const family of families.values()) {
    for (const s of family.samples) {
      const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
      assert.equal(seen.has(key), false, `duplicate series ${key}`);
      seen.add(key);
    }
  }
  return families;
}

function value(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = families.get(name.replace(/_(sum|count)$/, "")) ?? families.get(name);
  assert.ok(family, `family ${name}`);
  const found = family.samples.filter((s) =>
    s.name === name && JSON.stringify(Object.entries(s.labels).sort()) ===
      JSON.stringify(Object.entries(labels).sort())
  );
  assert.equal(found.length, 1, `one sample ${name}${JSON.stringify(labels)}`);
  return found[0].value;
}

describe("prometheusText()", () => {
  it("prometheusText() writes every family with HELP and TYPE lines and valid samples", async () => {
    await withPool({ min: 1, max: 4 }, async (pool) => {
      const held = await pool.acquire();
      await pool.use(() => {});
      const families = parse(prometheusText(pool));
      const s = pool.stats();
      const types = Object.fromEntries([...families].map(([name, f]) => [name, f.type]));
      assert.deepEqual(types, {
        edgepool_resources: "gauge",
        edgepool_resources_creating: "gauge",
        edgepool_resources_destroying: "gauge",
        edgepool_resources_min: "gauge",
        edgepool_resources_max: "gauge",
        edgepool_acquires_waiting: "gauge",
        edgepool_hit_ratio: "gauge",
        edgepool_acquires_total: "counter",
        edgepool_releases_total: "counter",
        edgepool_acquire_timeouts_total: "counter",
        edgepool_acquire_aborts_total: "counter",
        edgepool_acquire_rejections_total: "counter",
        edgepool_creates_total: "counter",
        edgepool_create_errors_total: "counter",
        edgepool_destroys_total: "counter",
        edgepool_validation_failures_total: "counter",
        edgepool_acquire_wait_seconds: "summary",
        edgepool_acquire_wait_seconds_max: "gauge",
      });
      for (const family of families.values()) assert.ok(family.help.length > 0);
      assert.equal(value(families, "edgepool_resources", { state: "idle" }), s.idle);
      assert.equal(value(families, "edgepool_resources", { state: "active" }), 1);
      assert.equal(value(families, "edgepool_resources", { state: "validating" }), 0);
      assert.equal(value(families, "edgepool_resources_min"), 1);
      assert.equal(value(families, "edgepool_resources_max"), 4);
      assert.equal(value(families, "edgepool_acquires_waiting"), 0);
      assert.equal(value(families, "edgepool_hit_ratio"), s.hitRate);
      assert.equal(value(families, "edgepool_acquires_total"), s.acquired);
      assert.equal(value(families, "edgepool_releases_total"), s.released);
      assert.equal(value(families, "edgepool_creates_total"), s.created);
      assert.equal(value(families, "edgepool_destroys_total"), s.destroyed);
      await held.release();
    });
  });

  it("prometheusText() counters follow the pool's counters", async () => {
    await withFakeTime(async (clock) => {
      const factory = new FakeFactory();
      factory.createPlan = ["fail"];
      await withPool({ max: 1, maxWaiting: 1 }, async (pool) => {
        const held = await (async () => {
          const acquiring = pool.acquire();
          await clock.tickAsync(100); // past the backoff after the failed create
          return acquiring;
        })();
        const queued = pool.acquire({ timeoutMs: 10 });
        const timedOut = assert.rejects(queued);
        await assert.rejects(pool.acquire()); // queue full
        await clock.tickAsync(10);
        await timedOut;
        await assert.rejects(pool.acquire({ signal: AbortSignal.abort() }));
        await held.destroy();
        const families = parse(prometheusText(pool));
        assert.equal(value(families, "edgepool_acquire_timeouts_total"), 1);
        assert.equal(value(families, "edgepool_acquire_rejections_total"), 1);
        assert.equal(value(families, "edgepool_acquire_aborts_total"), 1);
        assert.equal(value(families, "edgepool_create_errors_total"), 1);
        assert.equal(value(families, "edgepool_destroys_total"), 1);
        assert.equal(value(families, "edgepool_validation_failures_total"), 0);
      }, factory);
    });
  });

  it("prometheusText() reports wait times as a summary in seconds", async () => {
    await withFakeTime(async (clock) => {
      await withPool({ max: 1 }, async (pool) => {
        const held = await pool.acquire();
        const queued = pool.acquire();
        await clock.tickAsync(1_500);
        await held.release();
        await (await queued).release();
        const s = pool.stats();
        const families = parse(prometheusText(pool));
        const name = "edgepool_acquire_wait_seconds";
        assert.equal(value(families, name, { quantile: "0.5" }), s.waitMs.p50 / 1000);
        assert.equal(value(families, name, { quantile: "0.99" }), s.waitMs.p99 / 1000);
        assert.ok(value(families, name, { quantile: "0.99" }) > 1);
        assert.equal(value(families, `${name}_count`), 2);
        assert.equal(value(families, `${name}_sum`), 1.5);
        assert.equal(value(families, `${name}_max`), 1.5);
      });
    });
  });

  it("prometheusText() wait summary's _sum and _count never decrease between scrapes", async () => {
    await withFakeTime(async (clock) => {
      await withPool({ max: 1 }, async (pool) => {
        const name = "edgepool_acquire_wait_seconds";
        let last = { sum: 0, count: 0 };
        for (let i = 0; i < 300; i++) {
          // Waits of odd lengths, so a mean rounded to the microsecond would step back.
          const held = await pool.acquire();
          const queued = pool.acquire();
          await clock.tickAsync(((i * 7919) % 13) / 7 + 0.0003);
          await held.release();
          await (await queued).release();
          const families = parse(prometheusText(pool));
          const now = {
            sum: value(families, `${name}_sum`),
            count: value(families, `${name}_count`),
          };
          assert.ok(now.sum >= last.sum, `scrape ${i}: _sum ${last.sum} -> ${now.sum}`);
          assert.ok(now.count > last.count, `scrape ${i}: _count ${last.count} -> ${now.count}`);
          last = now;
        }
        assert.equal(last.count, pool.stats().waitMs.count);
        assert.equal(last.sum, pool.stats().waitMs.sum / 1000);
      });
    });
  });

  it("prometheusText() escapes backslash, double quote and line feed in label values", async () => {
    await withPoolSync({}, (pool) => {
      const tricky = 'a\\b"c\nd';
      const text = prometheusText({ [tricky]: pool }, { labels: { service: tricky } });
      assert.ok(text.includes(String.raw`service="a\\b\"c\nd"`), text);
      const families = parse(text);
      const sample = families.get("edgepool_resources_max")!.samples[0];
      assert.deepEqual(sample.labels, { service: tricky, pool: tricky });
    });
  });

  it("prometheusText() labels each pool of a record and keeps each family together", async () => {
    await withPool({ max: 4 }, async (primary) => {
      await withPoolSync({ max: 2 }, (replica) => {
        const text = prometheusText({ primary, replica }, { labels: { app: "api" } });
        const families = parse(text);
        assert.equal(value(families, "edgepool_resources_max", { app: "api", pool: "primary" }), 4);
        assert.equal(value(families, "edgepool_resources_max", { app: "api", pool: "replica" }), 2);
        assert.equal(families.get("edgepool_resources")!.samples.length, 6);
        assert.equal(families.get("edgepool_acquire_wait_seconds")!.samples.length, 8);
        assert.equal(prometheusText({}).split("\n").filter((l) => !l.startsWith("#")).length, 1);
      });
    });
  });

  it("prometheusText() honours prefix and poolLabel", async () => {
    await withPoolSync({ max: 3 }, (pool) => {
      const families = parse(
        prometheusText({ main: pool }, { prefix: "app_db_", poolLabel: "db" }),
      );
      assert.equal(value(families, "app_db_resources_max", { db: "main" }), 3);
      assert.ok([...families.keys()].every((name) => name.startsWith("app_db_")));
      const bare = parse(prometheusText(pool, { prefix: "" }));
      assert.equal(value(bare, "resources_max"), 3);
    });
  });

  it("prometheusText() rejects invalid names, duplicate labels and non-pools", async () => {
    await withPoolSync({}, (pool) => {
      for (const prefix of ["1x_", "a-b_", "with space", 7]) {
        assert.throws(() => prometheusText(pool, { prefix: prefix as string }), TypeError);
      }
      for (const label of ["__x", "a-b", "1a", "state", "quantile", ""]) {
        assert.throws(() => prometheusText(pool, { labels: { [label]: "v" } }), TypeError, label);
      }
      assert.throws(() => prometheusText({ a: pool }, { labels: { pool: "x" } }), TypeError);
      assert.throws(() => prometheusText({ a: pool }, { poolLabel: "bad-name" }), TypeError);
      assert.throws(() => prometheusText(pool, { poolLabel: "bad-name" }), TypeError);
      assert.throws(
        () => prometheusText(pool, { labels: { n: 1 as unknown as string } }),
        TypeError,
      );
      assert.throws(() => prometheusText({ a: {} as never }), TypeError);
      assert.throws(() => prometheusText(null as never), TypeError);
      assert.throws(() => prometheusText(pool, null as never), TypeError);
    });
  });

  it("prometheusText() writes NaN and infinities in the format's spelling", () => {
    const stats = statsSnapshot({
      hitRate: NaN,
      max: Infinity,
      waitMs: { avg: 0, p50: 0, p99: 0, max: -Infinity, count: 0, sum: 0 },
    });
    const source = { stats: () => stats };
    const text = prometheusText(source);
    parse(text);
    assert.match(text, /^edgepool_hit_ratio NaN$/m);
    assert.match(text, /^edgepool_resources_max \+Inf$/m);
    assert.match(text, /^edgepool_acquire_wait_seconds_max -Inf$/m);
  });
});
