/**
 * Integration-test helpers: a TCP proxy that can stop forwarding (a connection that hangs
 * without closing, like a dropped NAT entry), polling for a condition, and the peak of a count
 * sampled while work runs.
 */
import { connect, createServer, type Socket } from "node:net";

/** A loopback TCP proxy in front of `127.0.0.1:targetPort`. */
export interface TcpProxy {
  readonly port: number;
  /** Connections currently open through the proxy. */
  readonly open: number;
  /** Existing connections stop forwarding in both directions (they stay open); new ones work. */
  freeze(): void;
  /** Closes the proxy and every connection through it. */
  close(): Promise<void>;
}

/** Starts a {@linkcode TcpProxy} on a free port. */
export function startProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; frozen: boolean }>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.on("data", (chunk) => {
      if (!pair.frozen) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!pair.frozen) client.write(chunk);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({
        port,
        get open() {
          return pairs.size;
        },
        freeze() {
          for (const pair of pairs) pair.frozen = true;
        },
        close() {
          for (const { client, upstream } of pairs) {
            client.destroy();
            upstream.destroy();
          }
          pairs.clear();
          return new Promise<void>((done) => server.close(() => done()));
        },
      });
    });
  });
}

/** Resolves after `ms` real milliseconds. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `work` while sampling `count` every 5 ms, then samples once more after it finished;
 * resolves with what `work` resolved to and the highest count seen. The sampling stops even
 * when `work` rejects.
 */
export async function peakDuring<T>(
  count: () => Promise<number>,
  work: () => Promise<T>,
): Promise<{ value: T; peak: number }> {
  let peak = 0;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      peak = Math.max(peak, await count());
      await sleep(5);
    }
  })();
  try {
    const value = await work();
    peak = Math.max(peak, await count());
    return { value, peak };
  } finally {
    done = true;
    await sampler;
  }
}

/** Polls `check` every 20 ms until it returns true; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Closes `pool` once its creates in flight have finished. close() abandons creates in flight,
 * and a postgres.js client abandoned mid-startup may still be fetching array types when the
 * test stops the server: postgres.js does not await that query, so its rejection would be
 * unhandled (see src/factories/postgres.ts).
 */
export async function closePool(
  pool: { stats(): { creating: number }; close(o?: { timeoutMs?: number }): Promise<void> },
): Promise<void> {
  await waitFor("creates in flight to finish", () => pool.stats().creating === 0).catch(() => {});
  await pool.close({ timeoutMs: 1_000 });
}
