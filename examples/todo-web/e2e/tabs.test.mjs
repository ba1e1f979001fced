// Two tabs (pages of one browser context) on one IndexedDB, in real headless Chromium against
// a real node: one tab syncs, the other follows; a write in either tab shows live in both and
// reaches the node once; when the syncing tab closes, the other takes over the sync.
// Screenshots of every step go to test-artifacts/tabs/.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { STEP_MS, startStack, titles } from "./harness.mjs";

let stack;

before(async () => {
  stack = await startStack("tabs");
});

after(async () => {
  await stack?.stop();
});

async function add(page, title) {
  await page.fill("#title", title);
  await page.press("#title", "Enter");
}

function listed(page, expected) {
  return page.waitForFunction(
    (want) => [...document.querySelectorAll("#todos li .title")].map((t) => t.textContent).join("|") === want,
    expected.join("|"),
    { timeout: STEP_MS },
  );
}

test("two tabs share one database: one syncs, both see every write live, and the sync moves on when its tab closes", { timeout: 180_000 }, async () => {
  try {
    await tabsJourney();
  } catch (error) {
    await stack.shootAll("failure");
    throw error;
  }
});

async function tabsJourney() {
  const { browser, openApp, shot } = stack;
  const context = await browser.newContext();
  const first = await openApp(context);
  await first.waitForSelector("#status[data-state=online]", { timeout: STEP_MS });
  const second = await openApp(context); // used to stop at "open in another tab"
  await second.waitForSelector("#status[data-state=following]", { timeout: STEP_MS });
  await shot(first, "1-first-tab-syncs");
  await shot(second, "2-second-tab-follows");

  await add(second, "from the second tab");
  await listed(first, ["from the second tab"]);
  await first.waitForSelector("#status[data-state=online][data-pending='0']", { timeout: STEP_MS });
  await add(first, "from the first tab");
  await listed(second, ["from the second tab", "from the first tab"]);
  await shot(first, "3-first-tab-both-writes");
  await shot(second, "4-second-tab-both-writes");

  await first.close(); // the syncing tab goes: the second one takes over
  await second.waitForSelector("#status[data-state=online]", { timeout: STEP_MS });
  await add(second, "after the handover");
  await second.waitForSelector("#status[data-state=online][data-pending='0']", { timeout: STEP_MS });
  const elsewhere = await openApp(await browser.newContext()); // another device: its write arrives through the new leader
  await elsewhere.waitForSelector("#status[data-state=online]", { timeout: STEP_MS });
  await add(elsewhere, "from another device");
  await listed(second, ["from the second tab", "from the first tab", "after the handover", "from another device"]);
  await shot(second, "5-second-tab-after-handover");

  assert.deepEqual(await titles(second), ["from the second tab", "from the first tab", "after the handover", "from another device"]);
  const changes = await stack.pulled();
  const ids = changes.map((change) => change.mutation_id);
  assert.equal(new Set(ids).size, ids.length, "a mutation applied twice");
  assert.deepEqual(changes.map((change) => change.data.title).sort(), ["after the handover", "from another device", "from the first tab", "from the second tab"]);
}
