// End to end in real headless Chromium (Debian's, never a downloaded one): the built app
// against a real `breakwater serve`. Offline writes and edits survive a reload with no
// network, reach the node exactly once when it returns (and not a byte of them before), and
// appear live in a second context. The device reaches the node through a link the test cuts
// (harness.mjs: Chromium's offline switch alone leaks) as well as switching its context offline.
// Run with `npm run test:e2e` (builds first); screenshots of every step go to
// test-artifacts/offline/.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { STEP_MS, startStack, titles } from "./harness.mjs";

let stack;

before(async () => {
  stack = await startStack("offline");
});

after(async () => {
  await stack?.stop();
});

test("offline writes survive a reload and reach the node once, live in another context", { timeout: 180_000 }, async () => {
  try {
    await offlineJourney();
  } catch (error) {
    await stack.shootAll("failure");
    throw error;
  }
});

async function offlineJourney() {
  const { browser, link, metric, openApp, shot } = stack;
  const device = await browser.newContext();
  const page = await openApp(device, link.url);
  await page.waitForSelector("#status[data-state=online]", { timeout: STEP_MS });
  // The service worker has cached the shell once it controls the page.
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: STEP_MS });
  await shot(page, "1-online");

  const pushesBefore = await metric("breakwater_http_requests_total", 'route="/v1/sync/push"');
  await link.cut();
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

  // Nothing of the device's reached the node while it was offline: no change, not even a push request.
  assert.deepEqual(await stack.pulled(), [], "the device's writes reached the node while it was offline");
  assert.equal(await metric("breakwater_http_requests_total", 'route="/v1/sync/push"'), pushesBefore, "a push reached the node while the device was offline");
  await link.heal();
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

  // The counter read while offline does count this device's pushes.
  assert.ok((await metric("breakwater_http_requests_total", 'route="/v1/sync/push"')) > pushesBefore, "no push counted after the network came back");
  const changes = await stack.pulled();
  const ids = changes.map((change) => change.mutation_id);
  assert.equal(new Set(ids).size, ids.length, "a mutation applied twice");
  assert.equal(ids.length, 4, `two adds, one edit, one toggle: ${JSON.stringify(changes)}`);
  const docs = new Map(changes.map((change) => [change.id, change.data]));
  assert.deepEqual([...docs.values()].map((doc) => [doc.title, doc.done]).sort(), [["bread", true], ["oat milk", false]]);
}
