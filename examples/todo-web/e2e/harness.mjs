// What the end-to-end tests share: a real `breakwater serve`, the built app under
// `vite preview`, and Debian's headless Chromium (never a downloaded one). Each test file gets
// its own node, data directory and screenshot folder (test-artifacts/<suite>/), so files may run
// in parallel.
//
// `link` is a chaos proxy (`breakwater chaos proxy`) in front of the node: a page that reaches
// the node through it loses the network truly when `link.cut()` runs. Chromium's own offline
// switch (`context.setOffline`) is not enough: it keeps WebSockets opened before it, lets CORS
// preflights through, and let a push out while a page reloaded (docs/adr/0039-offline-e2e.md).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = fileURLToPath(new URL("..", import.meta.url));
const BREAKWATER = process.env.BREAKWATER_BIN ?? join(HERE, "../../.venv/bin/breakwater");
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
export const STEP_MS = 20_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

function start(processes, command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  processes.push(child);
  return { child, output: () => output };
}

/** How long a process may take to answer: Python starts slowly on a loaded CI machine. */
const START_MS = 90_000;

async function waitFor(url, what, started) {
  const deadline = Date.now() + START_MS;
  while (Date.now() < deadline) {
    if (started.child.exitCode !== null) throw new Error(`${what} exited:\n${started.output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not answer ${url} in ${START_MS / 1000} s:\n${started.output()}`);
}

/** The titles the page lists, in order. */
export async function titles(page) {
  return page.locator("#todos li .title").allTextContents();
}

/** Start a node, the link in front of it, the app and Chromium for the test file `suite`; `stop()` ends them all. */
export async function startStack(suite) {
  const artifacts = join(HERE, "test-artifacts", suite);
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  const processes = [];
  const data = mkdtempSync(join(tmpdir(), `todo-web-${suite}-`));
  const stopAll = () => {
    for (const child of processes) child.kill("SIGTERM");
    rmSync(data, { recursive: true, force: true });
  };
  const [nodePort, appPort, linkPort, controlPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const nodeUrl = `http://127.0.0.1:${nodePort}`;
  const control = `http://127.0.0.1:${controlPort}/proxies/link`;
  let browser;
  try {
    // On loopback the node allows pages from loopback origins (cors_origins' default) and
    // signs in anonymous users (auth mode auto is open there).
    const node = start(processes, BREAKWATER, ["serve", "--port", String(nodePort), "--data", data, "--drain-grace", "0"]);
    const proxy = start(processes, BREAKWATER, ["chaos", "proxy", "--listen", `127.0.0.1:${linkPort}`, "--upstream", `127.0.0.1:${nodePort}`, "--control", `127.0.0.1:${controlPort}`, "--name", "link"]);
    const app = start(processes, process.execPath, [join(HERE, "node_modules/vite/bin/vite.js"), "preview", "--host", "127.0.0.1", "--port", String(appPort), "--strictPort"], { cwd: HERE });
    await Promise.all([
      waitFor(`${nodeUrl}/healthz`, "breakwater serve", node),
      waitFor(control, "breakwater chaos proxy", proxy),
      waitFor(`http://127.0.0.1:${appPort}/`, "vite preview", app),
    ]);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  } catch (error) {
    stopAll(); // else the children keep the test process alive
    throw error;
  }
  const fault = async (method, path, body) => {
    const answer = await fetch(`${control}${path}`, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
    if (!answer.ok) throw new Error(`chaos proxy ${method} ${path}: ${answer.status} ${await answer.text()}`);
  };
  const appUrl = (node) => `http://127.0.0.1:${appPort}/?node=${encodeURIComponent(node)}`;
  const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  return {
    nodeUrl,
    browser,
    shot,
    /** The node behind a link the test can cut: no byte passes and open connections are reset. */
    link: {
      url: `http://127.0.0.1:${linkPort}`,
      // Partition first, so that nothing passes between the two faults; then reset what is open.
      cut: async () => {
        await fault("PUT", "/faults/partition", {});
        await fault("PUT", "/faults/reset_peer", { after_ms: 0 });
      },
      heal: () => fault("DELETE", "/faults"),
    },
    /** The node's counter `name` (Prometheus text), summed over the series whose labels include `labels`. */
    async metric(name, labels = "") {
      const text = await (await fetch(`${nodeUrl}/metrics`)).text();
      return text
        .split("\n")
        .filter((line) => line.startsWith(`${name}{`) && line.includes(labels))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
    },
    /** Open the app (syncing with `node`, by default straight to the node) in a new page of `context`; wait until it shows its list. */
    async openApp(context, node = nodeUrl) {
      const page = await context.newPage();
      // Requests cut by the offline switch are expected; any other failure is worth seeing.
      page.on("requestfailed", (request) => {
        const reason = request.failure()?.errorText ?? "";
        if (reason !== "net::ERR_INTERNET_DISCONNECTED") console.log(`[page] ${request.url()} failed: ${reason}`);
      });
      page.on("pageerror", (error) => console.log(`[page] error: ${error.message}`));
      await page.goto(appUrl(node));
      await page.waitForSelector("body[data-ready=true]", { timeout: STEP_MS });
      return page;
    },
    /** Every change the node holds in `collection` (one page is enough for these tests). */
    async pulled(collection = "todos") {
      return (await (await fetch(`${nodeUrl}/v1/sync/pull?collections=${collection}&limit=1000`)).json()).changes;
    },
    /** Screenshots of every open page, next to the steps' own, when a step failed. */
    async shootAll(prefix) {
      for (const [index, page] of browser.contexts().flatMap((c) => c.pages()).entries()) {
        await shot(page, `${prefix}-page-${index}`).catch(() => undefined);
      }
    },
    async stop() {
      await browser.close();
      stopAll();
    },
  };
}
