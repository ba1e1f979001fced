// Devices help a restore, against a real node put back with `breakwater backup` / `restore`
// (as tests/client/test_restore_offers.py does for the Python SDK): a device that synced writes
// made after the backup offers them back; a device with offers off loses its own.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";

import { Client } from "../src/client.js";
import type { ClientOptions } from "../src/client.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { freePort, Node } from "./node.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function openClient(options: Partial<ClientOptions> & Pick<ClientOptions, "endpoints">): Promise<Client> {
  const client = await Client.open({
    storage: new MemoryStorage(),
    transports: ["long_poll"],
    longPollWaitMs: 1_000,
    requestTimeoutMs: 5_000,
    backoffBaseMs: 20,
    backoffCapMs: 200,
    breakerResetMs: 200,
    pollIntervalMs: 1_000,
    ...options,
  });
  cleanups.push(() => client.close());
  return client;
}

/** A started node and a folder for its backups, both removed after the test. */
async function nodeWithBackups(): Promise<{ node: Node; backups: string }> {
  const node = new Node(await freePort());
  cleanups.push(() => node.remove());
  await node.start();
  const backups = mkdtempSync(join(tmpdir(), "bw-backups-"));
  cleanups.push(async () => rmSync(backups, { recursive: true, force: true }));
  return { node, backups };
}

const WAIT = { timeout: 20_000, interval: 50 };
const settled = (client: Client) => vi.waitFor(() => expect(client.outbox()).toEqual([]), WAIT);

describe("devices help a restore (breakwater restore)", () => {
  it("brings back what a device synced after the backup, its own writes and others' it pulled", { timeout: 120_000 }, async () => {
    const { node, backups } = await nodeWithBackups();
    const helper = await openClient({ endpoints: [node.url] });
    const plain = await openClient({ endpoints: [node.url], offerAfterRestore: false });
    await helper.collection("notes").set("before", { v: 1 });
    await settled(helper);
    await node.cli("backup", "--to", `file://${backups}`, "--name", "b");

    await helper.collection("notes").patch("before", { v: 2 });
    await helper.collection("notes").set("after", { by: "helper" });
    await helper.collection("notes").delete("gone-later");
    await plain.collection("notes").set("plain", { by: "plain" });
    await settled(helper);
    await settled(plain);
    await vi.waitFor(async () => expect((await helper.collection("notes").get("plain"))?.data).toEqual({ by: "plain" }), WAIT);

    await node.stop();
    await node.cli("restore", "--from", `file://${backups}`, "--backup", "b");
    await node.start();
    helper.syncNow();
    plain.syncNow();

    await vi.waitFor(async () => expect((await node.document("notes", "after"))?.data).toEqual({ by: "helper" }), WAIT);
    await vi.waitFor(async () => expect((await node.document("notes", "before"))?.data).toEqual({ v: 2 }), WAIT);
    // plain's own write came back through helper, which had pulled it: an offer needs one device that held it
    await vi.waitFor(async () => expect((await node.document("notes", "plain"))?.data).toEqual({ by: "plain" }), WAIT);
    await settled(helper);
    await settled(plain);
    await vi.waitFor(async () => expect((await plain.collection("notes").get("after"))?.data).toEqual({ by: "helper" }), WAIT);
    expect(await helper.rejections()).toEqual([]);
  });

  it("loses the writes after the backup when no device offers them", { timeout: 120_000 }, async () => {
    const { node, backups } = await nodeWithBackups();
    const plain = await openClient({ endpoints: [node.url], offerAfterRestore: false });
    await plain.collection("notes").set("before", { v: 1 });
    await settled(plain);
    await node.cli("backup", "--to", `file://${backups}`, "--name", "b");
    await plain.collection("notes").set("after", { v: 1 });
    await settled(plain);
    await node.stop();
    await node.cli("restore", "--from", `file://${backups}`, "--backup", "b");
    await node.start();
    plain.syncNow();
    await vi.waitFor(async () => expect(await plain.collection("notes").get("after")).toBeNull(), WAIT);
    expect((await plain.collection("notes").get("before"))?.data).toEqual({ v: 1 });
    expect(await node.document("notes", "after")).toBeNull();
  });
});
