// End to end in real headless Chromium (Debian's, never a downloaded one): the built app
// against a real `breakwater serve`. Offline writes and edits survive a reload with no
// network, reach the node exactly once when it returns, and appear live in a second context.
// Run with `npm run test:e2e` (builds first); screenshots of every step go to test-artifacts/.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = fileURLToPath(new URL("..", import.meta.url));
const BREAKWATER = process.env.BREAKWATER_BIN ?? join(HERE, "../../.venv/bin/breakwater");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const ARTIFACTS = join(HERE, "test-artifacts");
const STEP_MS = 20_000;

const processes = [];
let browser;
let nodeUrl;
let appUrl;
let data;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

function start(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  processes.push(child);
  return { child, output: () => output };
}

async function waitFor(url, what, started) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (started.child.exitCode !== null) throw new Error(`${what} exited:\n${started.output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not answer ${url} in 30 s:\n${started.output()}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function titles(page) {
  return page.locator("#todos li .title").allTextContents();
}

async function openApp(context) {
  const page = await context.newPage();
  // Requests cut by the offline switch are expected; any other failure is worth seeing.
  page.on("requestfailed", (request) => {
    const reason = request.failure()?.errorText ?? "";
    if (reason !== "net::ERR_INTERNET_DISCONNECTED") console.log(`[page] ${request.url()} failed: ${reason}`);
  });
  page.on("pageerror", (error) => console.log(`[page] error: ${error.message}`));
  await page.goto(appUrl);
  await page.waitForSelector("body[data-ready=true]", { timeout: STEP_MS });
  return page;
}

before(async () => {
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  data = mkdtempSync(join(tmpdir(), "todo-web-e2e-"));
  const [nodePort, appPort] = [await freePort(), await freePort()];
  nodeUrl = `http://127.0.0.1:${nodePort}`;
  // On loopback the node allows pages from loopback origins (cors_origins' default) and
  // signs in anonymous users (auth mode auto is open there).
  const node = start(BREAKWATER, ["serve", "--port", String(nodePort), "--data", data, "--drain-grace", "0"]);
  await waitFor(`${nodeUrl}/healthz`, "breakwater serve", node);
  const app = start(process.execPath, [join(HERE, "node_modules/vite/bin/vite.js"), "preview", "--host", "127.0.0.1", "--port", String(appPort), "--strictPort"], { cwd: HERE });
  appUrl = `http://127.0.0.1:${appPort}/?node=${encodeURIComponent(nodeUrl)}`;
  await waitFor(`http://127.0.0.1:${appPort}/`, "vite preview", app);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  for (const child of processes) child.kill("SIGTERM");
  if (data) rmSync(data, { recursive: true, force: true });
});

test("offline writes survive a reload and reach the node once, live in another context", { timeout: 180_000 }, async () => {
  try {
    await offlineJourney();
  } catch (error) {
    // What each open page showed when a step failed, next to the steps' screenshots.
    for (const [index, page] of browser.contexts().flatMap((c) => c.pages()).entries()) {
      await shot(page, `failure-page-${index}`).catch(() => undefined);
    }
    throw error;
  }
});

async function offlineJourney() {
  const device = await browser.newContext();
  const page = await openApp(device);
  await page.waitForSelector("#status[data-state=online]", { timeout: STEP_MS });
  // The service worker has cached the shell once it controls the page.
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: STEP_MS });
  await shot(page, "1-online");

  await device.setOffline(true);
  await page.waitForSelector("#status[data-state=offline]", { timeout: STEP_MS });
  for (const title of ["milk", "bread"]) {
    await page.fill("#title", title);
    await page.press("#title", "Enter");
  }
  await page.waitForFunction(() => document.querySelectorAll("#todos li").length === 2, null, { timeout: STEP_MS });
  await page.click("#todos li:has-text('milk') button.edit");
  await page.fill("#todos li form.editor input", "oat milk");
  await page.press("#todos li form.editor input", "Enter");
  await page.check("#todos li:has-text('bread') input[type=checkbox]");
  await page.waitForSelector("#todos li.done:has-text('bread')", { timeout: STEP_MS });
  assert.deepEqual(await titles(page), ["oat milk", "bread"]);
  await shot(page, "2-offline-edits");

  await page.reload(); // no network: the service worker serves the shell, IndexedDB the todos
  await page.waitForSelector("body[data-ready=true]", { timeout: STEP_MS });
  await page.waitForFunction(() => document.querySelectorAll("#todos li").length === 2, null, { timeout: STEP_MS });
  assert.deepEqual(await titles(page), ["oat milk", "bread"]);
  assert.equal(await page.locator("#todos li.done .title").textContent(), "bread");
  assert.equal(await page.getAttribute("#status", "data-state"), "offline");
  await shot(page, "3-offline-reload");

  const other = await browser.newContext();
  const watcher = await openApp(other);
  await watcher.waitForSelector("#status[data-state=online]", { timeout: STEP_MS });
  assert.deepEqual(await titles(watcher), []);
  await shot(watcher, "4-second-context-before");

  await device.setOffline(false);
  await page.waitForSelector("#status[data-state=online][data-pending='0']", { timeout: STEP_MS });
  await watcher.waitForFunction(
    () => [...document.querySelectorAll("#todos li .title")].map((t) => t.textContent).join("|") === "oat milk|bread",
    null,
    { timeout: STEP_MS },
  );
  await watcher.waitForSelector("#todos li.done:has-text('bread')", { timeout: STEP_MS });
  await shot(page, "5-back-online");
  await shot(watcher, "6-second-context-live");

  const pulled = await (await fetch(`${nodeUrl}/v1/sync/pull?collections=todos&limit=1000`)).json();
  const ids = pulled.changes.map((change) => change.mutation_id);
  assert.equal(new Set(ids).size, ids.length, "a mutation applied twice");
  assert.equal(ids.length, 4, `two adds, one edit, one toggle: ${JSON.stringify(pulled.changes)}`);
  const docs = new Map(pulled.changes.map((change) => [change.id, change.data]));
  assert.deepEqual([...docs.values()].map((doc) => [doc.title, doc.done]).sort(), [["bread", true], ["oat milk", false]]);
}
