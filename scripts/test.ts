/**
 * Runs the test suite unchanged on Deno, Bun and Node, one runtime after the
 * other, and ends with one line: `N passed, N failed` (totals over all
 * runtimes). Exits 0 only if nothing failed and every runtime ran a test.
 *
 * Each runtime writes a JUnit report that we parse ourselves, so that a
 * "test" means the same thing everywhere: a leaf `it`, never a `describe`.
 *
 * Usage: node_modules/.bin/node scripts/test.ts [options] [file|dir|filter]...
 *   --runtime deno|bun|node   run only these runtimes (repeatable, or a,b)
 *   --verbose, -v             also stream each runtime's own output
 * A file or directory argument selects those test files; any other argument
 * keeps the discovered test files whose path contains it.
 *
 * Only `node:` built-ins and erasable TypeScript: Node 24 runs this file as is.
 */
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

type Runtime = "deno" | "bun" | "node";
const RUNTIMES: Runtime[] = ["deno", "bun", "node"];

/** Wall clock for one runtime's whole run; past it the run is killed. */
const RUNTIME_TIMEOUT_MS = Number(process.env.TEST_RUNTIME_TIMEOUT_MS) ||
  8 * 60_000;
/** Per-test limit (Bun and Node only: Deno has no such flag). */
const TEST_TIMEOUT_MS = 20_000;
/** Lines of a failure message (and of a crashed runtime's output) to show. */
const MESSAGE_LINES = 8;
const OUTPUT_TAIL_LINES = 40;

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Failure {
  name: string;
  file: string;
  /** Short, from the reporter's message attribute (may be empty). */
  message: string;
  /** The full text: stack, diff. */
  details: string;
  /** How many lines of the message to show. */
  showLines?: number;
}

interface RuntimeResult {
  passed: number;
  failed: number;
  skipped: number;
  failures: Failure[];
  seconds: number;
  leftovers: boolean;
}

// ---------------------------------------------------------------- arguments

function parseArgs(argv: string[]) {
  const runtimes: Runtime[] = [];
  const selectors: string[] = [];
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--verbose" || arg === "-v") verbose = true;
    else if (arg === "--runtime" || arg.startsWith("--runtime=")) {
      const value = arg.includes("=") ? arg.slice(10) : argv[++i] ?? "";
      for (const name of value.split(",")) {
        if (!RUNTIMES.includes(name as Runtime)) {
          usage(`unknown runtime "${name}"`);
        }
        if (!runtimes.includes(name as Runtime)) runtimes.push(name as Runtime);
      }
    } else if (arg === "--help" || arg === "-h") usage();
    else if (arg.startsWith("-")) usage(`unknown option ${arg}`);
    else selectors.push(arg);
  }
  return {
    runtimes: runtimes.length ? runtimes : RUNTIMES,
    selectors,
    verbose,
  };
}

function usage(error?: string): never {
  if (error) console.error(`error: ${error}`);
  console.error(
    "usage: node scripts/test.ts [--runtime deno|bun|node]... [--verbose] [file|dir|filter]...",
  );
  process.exit(error ? 2 : 0);
}

// ------------------------------------------------------------------- files

function testFilesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith("_test.ts") && !f.includes("node_modules"))
    .map((f) => join(dir, f));
}

/** Paths are relative to ROOT (the runtimes run there) unless outside it. */
function findTestFiles(selectors: string[], cwd: string): string[] {
  const all = existsSync(join(ROOT, "tests")) ? testFilesUnder(join(ROOT, "tests")) : [];
  const chosen = new Set<string>();
  const filters: string[] = [];
  for (const sel of selectors) {
    const path = resolve(cwd, sel);
    if (!existsSync(path)) filters.push(sel);
    else if (statSync(path).isDirectory()) {
      testFilesUnder(path).forEach((f) => chosen.add(f));
    } else chosen.add(path);
  }
  for (const f of all) {
    if (filters.some((s) => relative(ROOT, f).includes(s))) chosen.add(f);
  }
  const files = selectors.length ? [...chosen] : all;
  return files.map(display).sort();
}

/** A path as we show it and pass it on: relative to ROOT when inside it. */
function display(path: string): string {
  const rel = relative(ROOT, resolve(ROOT, path));
  return rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

// ------------------------------------------------------------ the runtimes

function command(rt: Runtime, files: string[], xml: string): string[] {
  const local = join(ROOT, "node_modules", ".bin", rt);
  const bin = existsSync(local) ? local : rt;
  switch (rt) {
    case "deno":
      // Deno runs test modules one after the other unless --parallel; it
      // type-checks them first, so a type error fails the whole run.
      return [bin, "test", "-A", `--junit-path=${xml}`, ...files];
    case "bun":
      // --isolate gives each file a fresh global, as Deno and Node do, so a
      // leaked fake clock or global cannot break the next file. Bun treats a
      // bare "tests/x" as a name filter, hence the "./".
      return [
        bin,
        "test",
        "--isolate",
        `--timeout=${TEST_TIMEOUT_MS}`,
        "--reporter=junit",
        `--reporter-outfile=${xml}`,
        ...files.map((f) => isAbsolute(f) ? f : `./${f}`),
      ];
    case "node":
      return [
        bin,
        "--test",
        "--test-concurrency=1",
        `--test-timeout=${TEST_TIMEOUT_MS}`,
        "--test-reporter=junit",
        `--test-reporter-destination=${xml}`,
        "--test-reporter=spec",
        "--test-reporter-destination=stdout",
        ...files,
      ];
  }
}

interface RunOutcome {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Processes of the run were still alive after the runtime exited. */
  leftovers: boolean;
  output: string;
}

let current: ReturnType<typeof spawn> | undefined;

/** Kills the whole process group: runtimes spawn workers and subprocesses. */
function killGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pid) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // the group is already gone
  }
}

function run(argv: string[], verbose: boolean): Promise<RunOutcome> {
  return new Promise((done) => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
    };
    delete env.FORCE_COLOR;
    // detached: its own process group, so a timeout can kill all of it.
    const child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    current = child;
    let output = "";
    let timedOut = false;
    let leftovers = false;
    const collect = (chunk: Buffer) => {
      output += chunk;
      if (verbose) process.stdout.write(chunk);
    };
    child.stdout!.on("data", collect);
    child.stderr!.on("data", collect);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, "SIGTERM");
      setTimeout(() => killGroup(child.pid, "SIGKILL"), 5_000).unref();
    }, RUNTIME_TIMEOUT_MS);
    let exit: { code: number | null; signal: string | null } | undefined;
    child.on("error", (err) => {
      output += `\n${err.message}\n`;
      exit ??= { code: null, signal: null };
    });
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      // Anything still alive in the group was leaked by a test (a server, a
      // child process); it would keep our pipes open, so end it.
      leftovers = killGroup(child.pid, "SIGKILL");
    });
    child.on("close", () => {
      clearTimeout(timer);
      current = undefined;
      const status = exit ?? { code: null, signal: null };
      done({ ...status, timedOut, leftovers, output });
    });
  });
}

// On Ctrl-C, the runtime sits in its own process group and must be ended too.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killGroup(current?.pid, "SIGKILL");
    process.exit(130);
  });
}

// ------------------------------------------------------------------- JUnit

interface TestCase {
  name: string;
  /** Enclosing <testsuite> names, outermost first. */
  suites: string[];
  file: string;
  failure?: { message: string; details: string };
  skipped: boolean;
}

const ENTITIES: Record<string, string> = {
  lt: "<",
  gt: ">",
  amp: "&",
  quot: '"',
  apos: "'",
};

function decode(text: string): string {
  return text.replace(/&(#x[\da-f]+|#\d+|\w+);/gi, (all, e: string) => {
    if (e[0] !== "#") return ENTITIES[e] ?? all;
    return String.fromCodePoint(
      e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : Number(e.slice(1)),
    );
  });
}

/**
 * Reads the <testcase>s of a JUnit file. The three reporters write simple,
 * regular XML, so a tokenizer suffices. XML comments before a testcase are
 * kept: Node explains a file-level failure ("asynchronous activity after the
 * test ended") only in a comment.
 */
function parseJunit(xml: string): TestCase[] {
  const cases: TestCase[] = [];
  const suites: { name: string; file: string }[] = [];
  const token =
    /<!--([\s\S]*?)-->|<\?[\s\S]*?\?>|<!\[CDATA\[([\s\S]*?)\]\]>|<(\/?)([\w:-]+)((?:\s+[\w:-]+\s*=\s*"[^"]*")*)\s*(\/?)>|([^<]+)/g;
  let testCase: TestCase | undefined;
  let inFailure = false;
  let notes = "";
  for (const m of xml.matchAll(token)) {
    const [, comment, cdata, closing, tag, rawAttrs, selfClosing, text] = m;
    if (comment !== undefined) {
      notes += `${comment.trim()}\n`;
      continue;
    }
    if (cdata !== undefined || text !== undefined) {
      if (inFailure) testCase!.failure!.details += cdata ?? decode(text);
      continue;
    }
    if (!tag) continue;
    const attrs: Record<string, string> = {};
    for (const a of (rawAttrs ?? "").matchAll(/([\w:-]+)\s*=\s*"([^"]*)"/g)) {
      attrs[a[1]] = decode(a[2]);
    }
    if (tag === "testsuite") {
      if (closing) suites.pop();
      else if (!selfClosing) {
        suites.push({ name: attrs.name ?? "", file: attrs.file ?? "" });
      }
    } else if (tag === "testcase" && !closing) {
      testCase = {
        name: attrs.name ?? "",
        suites: suites.map((s) => s.name),
        file: attrs.file ?? suites.at(-1)?.file ?? "",
        skipped: false,
      };
      if (selfClosing) {
        cases.push(testCase);
        testCase = undefined;
      }
    } else if (tag === "testcase") {
      if (testCase) cases.push(testCase);
      testCase = undefined;
      notes = "";
    } else if (testCase && (tag === "failure" || tag === "error")) {
      if (closing) inFailure = false;
      else {
        testCase.failure = {
          message: [notes, attrs.message ?? attrs.type ?? ""].join("").trim(),
          details: "",
        };
        inFailure = !selfClosing;
      }
    } else if (testCase && tag === "skipped" && !closing) {
      testCase.skipped = true;
    }
  }
  return cases;
}

/**
 * Turns one runtime's testcases into leaf tests named "outer > inner > it".
 * The reporters disagree on what a testcase is:
 * - Node: testcases are the `it`s; `describe`s are nested <testsuite>s.
 * - Bun: the same, inside one outer <testsuite> per file (its name is the
 *   file); `classname` lists the describes innermost first, so we ignore it.
 * - Deno: every `describe` and `it` is a testcase. Top-level describes sit in
 *   a suite named after the file; all steps sit in one suite named
 *   "ext:deno_node/testing.ts", already named "outer > inner > it", with no
 *   file: we take it from the failure's stack, else from the top-level
 *   describe of that name. A describe fails with "N test step(s) failed"
 *   when a step fails.
 */
function toLeaves(rt: Runtime, cases: TestCase[]): TestCase[] {
  if (rt === "node") {
    return cases.map((c) => ({
      ...c,
      name: [...c.suites, c.name].join(" > "),
    }));
  }
  if (rt === "bun") {
    return cases.map((c) => ({
      ...c,
      name: [...c.suites.slice(1), c.name].join(" > "),
    }));
  }
  // Deno: a testcase is a leaf unless another one is named "<it> > ...".
  const prefixes = new Set<string>();
  const fileOf = new Map<string, string>();
  for (const c of cases) {
    const parts = c.name.split(" > ");
    for (let i = 1; i < parts.length; i++) {
      prefixes.add(parts.slice(0, i).join(" > "));
    }
    const suite = c.suites.at(-1) ?? "";
    if (parts.length === 1 && !suite.startsWith("ext:")) fileOf.set(c.name, suite);
  }
  const leaves: TestCase[] = [];
  for (const c of cases) {
    const inStack = /file:\/\/(\S+?_test\.ts):\d+/.exec(c.failure?.details ?? "");
    const file = inStack
      ? fileURLToPath(`file://${inStack[1]}`)
      : fileOf.get(c.name.split(" > ")[0]) ?? "";
    if (!prefixes.has(c.name)) leaves.push({ ...c, file });
    else if (c.failure && !/^\d+ test steps? failed/.test(c.failure.message)) {
      // A describe that failed on its own (a hook threw, or its promise could
      // never settle): count it, since no leaf carries that failure.
      leaves.push({ ...c, file, name: `${c.name} (describe)` });
    }
  }
  return leaves;
}

/** Bun reports errors outside any test (a file that fails to load, an
 * unhandled rejection) only on the console: "# Unhandled error between
 * tests" blocks and an "N error(s)" summary line. */
function bunErrors(output: string): Failure[] {
  const count = Number(/^\s*(\d+) errors?$/m.exec(output)?.[1] ?? 0);
  const blocks = [
    ...output.matchAll(
      /^(?:(\S.*\.ts):\n\n)?# Unhandled error between tests\n-+\n([\s\S]*?)\n-+$/gm,
    ),
  ];
  return Array.from({ length: count }, (_, i) => ({
    name: "(error outside any test)",
    file: blocks[i]?.[1] ?? "",
    message: "",
    details: blocks[i]?.[2] ?? "see bun.log",
  }));
}

// ---------------------------------------------------------------- reporting

// Some runtimes color their output even with NO_COLOR set.
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[\\d;]*m`, "g");

function tail(text: string, lines: number): string {
  return text.replace(ANSI, "").trimEnd().split("\n").slice(-lines).join("\n");
}

/** The first lines of the message, plus the stack line that points into
 * the test file when those lines do not show it. */
function excerpt(f: Failure): string {
  const lines = (l: string) => l.split("\n").filter((x) => x.trim());
  const head = lines(f.message || f.details).slice(
    0,
    f.showLines ?? MESSAGE_LINES,
  );
  const base = f.file.split("/").at(-1);
  const at = base &&
    lines(f.details).find((l) => l.includes(base) && /:\d+:\d+/.test(l));
  if (at && !head.includes(at)) head.push(at.trim());
  return head.map((l) => `      ${l}`).join("\n");
}

async function runRuntime(
  rt: Runtime,
  files: string[],
  dir: string,
  verbose: boolean,
): Promise<RuntimeResult> {
  const xml = join(dir, `${rt}.xml`);
  const started = performance.now();
  const outcome = await run(command(rt, files, xml), verbose);
  const seconds = (performance.now() - started) / 1000;
  writeFileSync(join(dir, `${rt}.log`), outcome.output);

  const report = existsSync(xml) ? readFileSync(xml, "utf8") : "";
  const leaves = toLeaves(rt, parseJunit(report));
  const failures: Failure[] = leaves.filter((c) => c.failure !== undefined)
    .map((c) => ({
      name: c.name,
      file: c.file && display(c.file),
      ...c.failure!,
    }));
  if (rt === "bun") failures.push(...bunErrors(outcome.output));
  const skipped = leaves.filter((c) => c.skipped).length;
  const passed = leaves.length - skipped -
    leaves.filter((c) => c.failure !== undefined).length;

  // Failures the report cannot show: count each as one failed test.
  const exitedBadly = outcome.code !== 0;
  const why = outcome.timedOut
    ? `timed out after ${RUNTIME_TIMEOUT_MS / 1000} s and was killed`
    : outcome.signal
    ? `was killed by ${outcome.signal}`
    : !report.trim() && exitedBadly
    ? `wrote no JUnit report (exit code ${outcome.code})`
    : exitedBadly && failures.length === 0
    ? `exited with code ${outcome.code} but reported no failing test`
    : passed + failures.length === 0
    ? "ran zero tests"
    : "";
  if (why) {
    failures.push({
      name: `(${rt} ${why})`,
      file: "",
      message: `last lines of its output (full log: ${rt}.log):\n` +
        tail(outcome.output, OUTPUT_TAIL_LINES),
      details: "",
      showLines: OUTPUT_TAIL_LINES + 1,
    });
  }
  return {
    passed,
    failed: failures.length,
    skipped,
    failures,
    seconds,
    leftovers: outcome.leftovers && !outcome.timedOut,
  };
}

function printResult(rt: Runtime, r: RuntimeResult): void {
  const skipped = r.skipped ? `, ${r.skipped} skipped` : "";
  console.log(
    `${rt}: ${r.passed} passed, ${r.failed} failed${skipped} (${r.seconds.toFixed(1)} s)`,
  );
  if (r.leftovers) {
    console.log(`  warning: killed processes the ${rt} tests left running`);
  }
  for (const f of r.failures) {
    console.log(`  FAIL ${f.name}${f.file ? `  [${f.file}]` : ""}`);
    console.log(excerpt(f));
  }
}

// --------------------------------------------------------------------- main

const args = parseArgs(process.argv.slice(2));
const files = findTestFiles(args.selectors, process.cwd());
let passed = 0;
let failed = 0;

if (files.length === 0) {
  console.log(
    args.selectors.length
      ? `no test file matches ${args.selectors.join(" ")}`
      : "no test files found (tests/**/*_test.ts)",
  );
  failed = 1;
} else {
  const dir = mkdtempSync(join(tmpdir(), "edgepool-test-"));
  console.log(`${files.length} test files on ${args.runtimes.join(", ")}`);
  for (const rt of args.runtimes) {
    console.log(`${rt}: running...`);
    const result = await runRuntime(rt, files, dir, args.verbose);
    printResult(rt, result);
    passed += result.passed;
    failed += result.failed;
  }
  // Keep the logs and reports of a failed run for a closer look.
  if (failed) console.log(`reports and full output: ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
