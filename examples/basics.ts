/**
 * The basics, one scenario at a time, on an embedded SQLite database:
 *
 * 1. acquire and release by hand;
 * 2. a scoped lease with `await using`, released however the scope ends;
 * 3. concurrent workers sharing a few connections, first come first served;
 * 4. exhaustion: every connection held, an acquire times out with the pool's state;
 * 5. a connection that died while idle fails validation and is replaced transparently.
 *
 * Runs unchanged on each runtime:
 *
 *   deno run -A examples/basics.ts · bun examples/basics.ts · node examples/basics.ts
 *
 * @module
 */
import { AcquireTimeoutError, Pool } from "../mod.ts";
import { breakConnection, openExampleDb, sleep } from "./_db.ts";

const MAX = 3;
const WORKERS = 12;
const QUERIES_PER_WORKER = 5;

await using db = await openExampleDb();
console.log(`edgepool basics on ${db.description}\n`);

const pool = new Pool(db.factory, {
  max: MAX,
  acquireTimeoutMs: 5_000,
  // Validate every connection before handing it out again (by default one returned less than
  // 500 ms ago is trusted), so that scenario 5 shows at once.
  validateBypassMs: 0,
});
const state = () => {
  const s = pool.stats();
  return `${s.idle} idle, ${s.active} in use, ${s.waiting} waiting`;
};

// 1. By hand: every acquire needs exactly one release (a second one is a no-op).
console.log("1. acquire and release");
const lease = await pool.acquire();
const { answer } = lease.value.get<{ answer: number }>("select 40 + ? as answer", 2)!;
console.log(`   connection ${lease.info.id} answered ${answer}; ${state()}`);
await lease.release();
console.log(`   released: ${state()}`);

// 2. Scoped: the lease ends with the block, even when the block throws.
console.log("2. a scoped lease: await using");
try {
  await using conn = await pool.acquire();
  const { n } = conn.value.get<{ n: number }>("select count(*) as n from greetings")!;
  console.log(`   connection ${conn.info.id} counted ${n} greetings; ${state()}`);
  throw new Error("something failed inside the scope");
} catch (error) {
  console.log(`   the scope threw "${(error as Error).message}"; ${state()}`);
}

// 3. Many workers, few connections: the pool opens at most MAX, and waiters are served in order
// by hand-off as connections come back.
console.log(`3. ${WORKERS} workers × ${QUERIES_PER_WORKER} queries through max ${MAX}`);
let inUse = 0;
let mostInUse = 0;
await Promise.all(
  Array.from({ length: WORKERS }, async () => {
    for (let i = 0; i < QUERIES_PER_WORKER; i++) {
      await pool.use(async (conn) => {
        mostInUse = Math.max(mostInUse, ++inUse);
        conn.run("update visits set n = n + 1");
        await sleep(2); // some work while holding the connection
        inUse--;
      });
    }
  }),
);
const { n: visits } = await pool.use((conn) => conn.get<{ n: number }>("select n from visits")!);
const s3 = pool.stats();
console.log(
  `   ${visits} updates on ${s3.created} connections, at most ${mostInUse} in use at once; ` +
    `wait p50 ${s3.waitMs.p50.toFixed(1)} ms, p99 ${s3.waitMs.p99.toFixed(1)} ms`,
);

// 4. Exhaustion: with every connection held, an acquire waits up to its deadline, then fails
// with an error that says what the pool was doing.
console.log(`4. all ${MAX} connections held; one more acquire with timeoutMs: 100`);
const held = await Promise.all(Array.from({ length: MAX }, () => pool.acquire()));
try {
  await pool.acquire({ timeoutMs: 100 });
} catch (error) {
  if (!(error instanceof AcquireTimeoutError)) throw error;
  console.log(`   ${error.name}: ${error.message}`);
}
await Promise.all(held.map((lease) => lease.release()));
console.log(`   released them: ${state()}`);

// 5. A connection dies while idle (the server restarted, a proxy dropped it): validation
// catches it before anyone gets it, the pool destroys it and hands out another one.
console.log("5. a connection dies while idle");
const last = await pool.acquire();
const { id } = last.info;
const idleConnection = last.value;
await last.release(); // LIFO: the connection released last is handed out next
breakConnection(idleConnection); // while idle, behind the pool's back
console.log(`   connection ${id} broke while idle`);
{
  await using conn = await pool.acquire();
  const s5 = pool.stats();
  console.log(
    `   the next acquire got connection ${conn.info.id}; ` +
      `validation failures: ${s5.validationFailures}, destroyed: ${s5.destroyed}`,
  );
}

await pool.close();
const { created, destroyed, acquired, released } = pool.stats();
console.log(`\nclosed: ${acquired} acquired, ${released} released`);
console.log(`resources leaked: ${created - destroyed}, connections open: ${db.openConnections}`);
