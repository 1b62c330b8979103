/**
 * The edge scenarios: one HTTP route per behaviour of the pool, answering JSON with what it
 * observed; the test files (`tests/runtimes/*_test.ts`) make the assertions. Bundled by esbuild
 * from `mod.ts` into a Cloudflare Worker (`worker.ts`) and a Vercel Edge Runtime script
 * (`edge.ts`), and served over loopback HTTP by the real runtimes.
 *
 * The pools at the top of this module are made at module (global) scope, as a Worker or an
 * edge function keeps one pool per isolate. Workers forbid timers and I/O there: constructing
 * them must start nothing. Every other scenario makes its own pool inside the request.
 */
import {
  AcquireTimeoutError,
  type Lease,
  Pool,
  PoolClosedError,
  PoolError,
  type PoolEvent,
} from "../../../mod.ts";

interface Conn {
  id: number;
  closed: boolean;
}

function factory(made: Conn[] = []) {
  return {
    create: (): Conn => {
      const conn = { id: made.length + 1, closed: false };
      made.push(conn);
      return conn;
    },
    destroy: (conn: Conn) => {
      conn.closed = true;
    },
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function errorInfo(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { value: String(error) };
  return {
    name: error.name,
    message: error.message,
    isPoolError: error instanceof PoolError,
    isAcquireTimeout: error instanceof AcquireTimeoutError,
    isPoolClosed: error instanceof PoolClosedError,
  };
}

// ------------------------------------------------------------- module scope

/** What happened while this module was evaluated (a Worker's global scope). */
const atLoad: Record<string, unknown> = {};

const sharedMade: Conn[] = [];
/** One pool per isolate, shared by every request, as a Worker would keep it. */
const shared = new Pool(factory(sharedMade), { max: 2 });
atLoad.shared = shared.stats();

/** max 1, for a hand-off between two concurrent requests. */
const handoff = new Pool(factory(), { max: 1 });

/**
 * Ages fast: its reaper should destroy an idle resource within a later request. Its factory
 * validates, as database factories do: a validating acquire reads the clock, which is what
 * notices the interval died with an earlier request.
 */
const aging = new Pool({ ...factory(), validate: (conn: Conn) => !conn.closed }, {
  reapIntervalMs: 20,
  idleTimeoutMs: 40,
  validateBypassMs: 50,
});

/** Its first create fails; the retry after the backoff must happen in a later request. */
let flakyFailures = 1;
const flaky = new Pool({
  create: (): Conn => {
    if (flakyFailures-- > 0) throw new Error("database down");
    return { id: 1, closed: false };
  },
}, { max: 1 });

/** Its creates take 100 ms of (timer-simulated) I/O. */
const slow = new Pool({
  create: async (): Promise<Conn> => {
    await sleep(100);
    return { id: 1, closed: false };
  },
}, { max: 1, createTimeoutMs: 300 });

/** `min: 1` at global scope, where a Worker may start neither timers nor I/O. */
let warm: Pool<Conn> | undefined;
try {
  warm = new Pool(factory(), { min: 1 });
  atLoad.warm = warm.stats();
} catch (error) {
  atLoad.warmError = errorInfo(error);
}

/** A pool of I/O objects (a stream stands for a socket) shared across requests. */
const streams = new Pool({ create: () => new TransformStream<Uint8Array, Uint8Array>() }, {
  max: 1,
});

// ------------------------------------------------------------- scenarios

type Scenario = (url: URL) => Promise<unknown>;

const scenarios: Record<string, Scenario> = {
  /** What the runtime offers, and what module evaluation did. */
  "/env": () =>
    Promise.resolve({
      atLoad,
      features: {
        asyncDispose: typeof Symbol.asyncDispose === "symbol",
        abortSignalAny: typeof AbortSignal.any === "function",
        abortSignalTimeout: typeof AbortSignal.timeout === "function",
        performanceNow: typeof performance?.now === "function",
        timerHandle: typeof setTimeout(() => {}, 0),
      },
    }),

  /** The module-scope pool: lease, give back, and reuse across requests. */
  "/shared": async () => {
    const lease = await shared.acquire({ timeoutMs: 1_000 });
    const id = lease.value.id;
    await lease.release();
    const used = await shared.use((conn) => conn.id);
    return { id, used, stats: shared.stats() };
  },

  /** A queued acquire is served by hand-off when the holder releases. */
  "/wait": async () => {
    const made: Conn[] = [];
    await using pool = new Pool(factory(made), { max: 1 });
    const first = await pool.acquire();
    const firstId = first.value.id;
    const second = pool.acquire({ timeoutMs: 2_000 });
    const waitingWhileHeld = pool.stats().waiting;
    setTimeout(() => void first.release(), 30);
    const lease = await second;
    const result = {
      firstId,
      secondId: lease.value.id,
      waitingWhileHeld,
      created: made.length,
      stats: pool.stats(),
    };
    await lease.release();
    return result;
  },

  /** An acquire past its deadline rejects with AcquireTimeoutError and leaves the queue. */
  "/timeout": async () => {
    await using pool = new Pool(factory(), { max: 1 });
    await using _held = await pool.acquire();
    try {
      await pool.acquire({ timeoutMs: 30 });
      return { rejected: false };
    } catch (error) {
      return {
        rejected: true,
        error: errorInfo(error),
        timeoutMs: (error as AcquireTimeoutError).timeoutMs,
        stats: pool.stats(),
      };
    }
  },

  /** An aborted acquire rejects with signal.reason: queued, already aborted, or timed out. */
  "/abort": async () => {
    await using pool = new Pool(factory(), { max: 1 });
    await using _held = await pool.acquire();
    const controller = new AbortController();
    const reason = new Error("client went away");
    const queued = pool.acquire({ signal: controller.signal, timeoutMs: 5_000 });
    setTimeout(() => controller.abort(reason), 10);
    const outcomes: Record<string, unknown> = {};
    await queued.then(() => outcomes.queued = "served", (e) => outcomes.queued = e === reason);
    const early = new Error("aborted before");
    await pool.acquire({ signal: AbortSignal.abort(early) })
      .then(() => outcomes.preAborted = "served", (e) => outcomes.preAborted = e === early);
    await pool.acquire({ signal: AbortSignal.timeout(20), timeoutMs: 5_000 })
      .then(() => outcomes.signalTimeout = "served", (e) => outcomes.signalTimeout = e?.name);
    return { ...outcomes, stats: pool.stats() };
  },

  /** close(): waiters rejected, outstanding leases awaited, everything destroyed. */
  "/close": async () => {
    const made: Conn[] = [];
    const pool = new Pool(factory(made), { max: 1 });
    const held = await pool.acquire();
    const waiter = pool.acquire({ timeoutMs: 5_000 }).then(
      () => "served",
      (e) => errorInfo(e),
    );
    const closing = pool.close({ timeoutMs: 2_000 });
    const waiterOutcome = await waiter;
    const afterClose = await pool.acquire().then(() => "served", (e) => errorInfo(e));
    setTimeout(() => void held.release(), 20);
    await closing;
    return {
      waiter: waiterOutcome,
      afterClose,
      closed: pool.closed,
      destroyed: made.every((c) => c.closed),
      stats: pool.stats(),
    };
  },

  /** The event stream and the onEvent callback both see a lease's whole life. */
  "/events": async () => {
    const seen: string[] = [];
    const pool = new Pool(factory(), { onEvent: (e) => seen.push(e.type) });
    const events = pool.events();
    const collected = (async () => {
      const types: PoolEvent["type"][] = [];
      for await (const event of events) types.push(event.type);
      return types;
    })();
    await pool.use(() => {});
    await pool.close();
    return { iterated: await collected, callback: seen };
  },

  /** `await using` on a lease releases it at the end of the scope. */
  "/dispose": async () => {
    await using pool = new Pool(factory(), { max: 1 });
    let lease: Lease<Conn> | undefined;
    {
      await using scoped = await pool.acquire();
      lease = scoped;
    }
    return { released: lease.released, stats: pool.stats() };
  },

  /** Holds the module-scope max-1 pool for `ms`. */
  "/handoff/hold": async (url) => {
    const lease = await handoff.acquire({ timeoutMs: 2_000 });
    await sleep(Number(url.searchParams.get("ms") ?? 200));
    await lease.release();
    return { held: true };
  },

  /** Waits for the module-scope max-1 pool, released by another request. */
  "/handoff/wait": async () => {
    const waiting = handoff.acquire({ timeoutMs: 2_000 });
    const queued = handoff.stats().waiting;
    const lease = await waiting;
    await lease.release();
    return { queued, stats: handoff.stats() };
  },

  /** Leaves one idle resource in the fast-aging pool. */
  "/aging/use": async () => {
    await aging.use(() => {});
    return { stats: aging.stats() };
  },

  /** Later: waits for reaper ticks, then reports. */
  "/aging/check": async () => {
    // The reaper's interval died with the request that started it. Using the pool more than
    // three intervals after its last tick revives it, in this request, which then ages the
    // idle resource out.
    await sleep(100);
    await aging.use(() => {});
    await sleep(250);
    return { stats: aging.stats() };
  },

  /** The first create fails; the acquire is abandoned before the backoff ends. */
  "/flaky/fail": async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("gave up")), 5);
    const error = await flaky.acquire({ signal: controller.signal }).then(() => null, errorInfo);
    return { error, stats: flaky.stats() };
  },

  /** Later: the create is retried. */
  "/flaky/retry": async () => {
    const outcome = await flaky.use((conn) => conn.id, { timeoutMs: 500 })
      .then((id) => ({ id }), errorInfo);
    return { outcome, stats: flaky.stats() };
  },

  /** A create starts; the request that wanted it ends before it finishes. */
  "/slow/start": async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("gave up")), 10);
    const error = await slow.acquire({ signal: controller.signal }).then(() => null, errorInfo);
    return { error, stats: slow.stats() };
  },

  /** Later, after the create had time to finish: the pool serves. */
  "/slow/later": async () => {
    await sleep(150);
    const outcome = await slow.use((conn) => conn.id, { timeoutMs: 500 })
      .then((id) => ({ id }), errorInfo);
    return { outcome, stats: slow.stats() };
  },

  /** The `min: 1` pool made at global scope is warm by the first request. */
  "/warm": async () => {
    if (!warm) return { error: atLoad.warmError };
    const ready = await warm.ready({ timeoutMs: 300 }).then(() => true, errorInfo);
    return { ready, stats: warm.stats() };
  },

  /** A round trip through a pooled stream; the first request creates it, a later one reuses it. */
  "/io": async () => {
    const reused = streams.stats().idle > 0;
    try {
      const echoed = await streams.use(roundTrip, { timeoutMs: 1_000 });
      return { reused, ok: echoed === 42 };
    } catch (error) {
      return { reused, ok: false, error: errorInfo(error) };
    }
  },

  /** The safe pattern for I/O objects on Workers: a pool per request. */
  "/io/per-request": async () => {
    await using pool = new Pool({ create: () => new TransformStream<Uint8Array>() }, { max: 2 });
    const echoed = await Promise.all([1, 2, 3].map(() => pool.use(roundTrip)));
    return { ok: echoed.every((n) => n === 42), stats: pool.stats() };
  },
};

/** Writes a byte into the stream and reads it back, as a query on a socket would. */
async function roundTrip(stream: TransformStream<Uint8Array, Uint8Array>): Promise<number> {
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  try {
    const echo = Promise.all([writer.write(new Uint8Array([42])), reader.read()]);
    echo.catch(() => {}); // when it never answers, its late rejection is not news
    const outcome = await Promise.race([echo, sleep(500).then(() => undefined)]);
    if (outcome === undefined) throw new Error("the stream never answered");
    return outcome[1].value?.[0] ?? -1;
  } finally {
    writer.releaseLock();
    reader.releaseLock();
  }
}

/** Routes a request to its scenario; answers JSON, 404 for an unknown path. */
export async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const scenario = scenarios[url.pathname];
  if (!scenario) return Response.json({ error: `no scenario ${url.pathname}` }, { status: 404 });
  try {
    return Response.json(await scenario(url));
  } catch (error) {
    return Response.json({ thrown: errorInfo(error) }, { status: 500 });
  }
}
