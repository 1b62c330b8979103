/**
 * The dashboard in a real browser: examples/dashboard.ts runs as a child process (on the
 * runtime running the tests) and headless Chromium, driven by playwright-core, loads its page
 * and watches it update. Chromium must be installed (Debian: `apt-get install chromium`);
 * without it this test fails, it never skips. `CHROMIUM_PATH` overrides /usr/bin/chromium.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { ROOT, RUNTIME, type StartedServer, startServer } from "./fixtures/examples_spawn.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOT = join(ROOT, ".ci-artifacts", "dashboard.png");

const points = async (page: Page) => Number(await page.getAttribute("#chart", "data-points"));
const activeLine = async (page: Page) => (await page.getAttribute("#line-active", "d")) ?? "";

describe(`examples/dashboard.ts in headless Chromium, served by ${RUNTIME}`, () => {
  let server: StartedServer | undefined;
  let browser: BrowserContext | undefined;
  let page: Page | undefined;
  let profile: string | undefined;
  const requested: string[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `Chromium is not installed at ${CHROMIUM}: install it (Debian: apt-get install -y chromium) ` +
        "or set CHROMIUM_PATH",
    );
    server = await startServer(RUNTIME, "examples/dashboard.ts");
    profile = mkdtempSync(join(tmpdir(), "edgepool-chromium-"));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      viewport: { width: 1200, height: 760 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = browser.pages()[0] ?? await browser.newPage();
    page.setDefaultTimeout(10_000);
    page.on("request", (request) => requested.push(request.url()));
    page.on("pageerror", (error) => pageErrors.push(error.message));
  });

  after(async () => {
    await browser?.close();
    await server?.process[Symbol.asyncDispose]();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const open = () => {
    assert.ok(server && page, "the dashboard or the browser did not start");
    return { server, page };
  };

  it("loads a self-contained page that connects to the event stream", async () => {
    const { server, page } = open();
    const response = await page.goto(server.url);
    assert.equal(response?.status(), 200);
    await page.waitForFunction("document.getElementById('status').textContent === 'live'");
    await page.waitForFunction("document.getElementById('title').textContent.includes('SQLite')");
    assert.deepEqual(pageErrors, []);
    const elsewhere = requested.filter((url) => !url.startsWith(server.url));
    assert.deepEqual(elsewhere, [], "the page fetched something from another origin");
    assert.deepEqual(
      requested.map((url) => new URL(url).pathname).sort(),
      ["/", "/events"],
    );
  });

  it("draws the pool's stats over time: the chart gains points and its lines move", async () => {
    const { page } = open();
    await page.waitForFunction("Number(document.getElementById('chart').dataset.points) >= 4");
    const before = { points: await points(page), line: await activeLine(page) };
    assert.match(before.line, /^M[\d.]+ [\d.]+( L[\d.]+ [\d.]+)+$/);
    await page.waitForFunction(
      `Number(document.getElementById('chart').dataset.points) >= ${before.points + 4}`,
    );
    const later = { points: await points(page), line: await activeLine(page) };
    assert.ok(later.points >= before.points + 4, `${before.points} → ${later.points}`);
    assert.notEqual(later.line, before.line);
    assert.match((await page.textContent("#v-total")) ?? "", /^\d+ \/ 8$/);
    assert.match((await page.textContent("#v-rps")) ?? "", /^\d+$/);
  });

  it("lists the pool's events as they stream in", async () => {
    const { page } = open();
    await page.waitForFunction("document.querySelectorAll('#log li').length >= 10");
    const types = await page.locator("#log li b").allTextContents();
    assert.ok(types.includes("acquire") && types.includes("release"), types.join(", "));
    assert.match((await page.textContent("#counts")) ?? "", /acquire \d+/);
  });

  it("saves a screenshot to .ci-artifacts/dashboard.png", async () => {
    const { page } = open();
    // A few seconds of history, so that the picture shows the lines moving.
    await page.waitForFunction("Number(document.getElementById('chart').dataset.points) >= 28");
    mkdirSync(join(ROOT, ".ci-artifacts"), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(statSync(SCREENSHOT).size > 10_000, "the screenshot is suspiciously small");
    assert.deepEqual(pageErrors, []);
  });

  it("shuts down on SIGTERM with the page still connected, leaking nothing", async () => {
    const { server } = open();
    const exit = await server.process.stop("SIGTERM");
    assert.deepEqual(exit, { code: 0, signal: null }, server.process.output);
    assert.match(
      server.process.stdout,
      /0 resources leaked, 0 connections open/,
      server.process.output,
    );
  });
});
