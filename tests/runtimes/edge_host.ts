/**
 * Serves a script in Vercel's Edge Runtime (npm `edge-runtime`) over loopback HTTP, for
 * `edge_runtime_test.ts`. Run by Node 24 whichever runtime runs the tests, since edge-runtime
 * is built on Node's `vm` module.
 *
 * Usage: node tests/runtimes/edge_host.ts <script.js>
 * Prints one line, `{"url":"http://127.0.0.1:PORT"}`, once listening; exits when stdin closes.
 */
import { readFileSync } from "node:fs";
import { EdgeRuntime, runServer } from "edge-runtime";

const script = process.argv[2];
if (!script) {
  console.error("usage: node tests/runtimes/edge_host.ts <script.js>");
  process.exit(2);
}
const runtime = new EdgeRuntime({ initialCode: readFileSync(script, "utf8") });
const server = await runServer({ runtime, host: "127.0.0.1", port: 0 });
console.log(JSON.stringify({ url: server.url }));

// The test holds our stdin; when it ends (or dies), we end too.
process.stdin.resume();
process.stdin.on("end", async () => {
  await server.close();
  process.exit(0);
});
