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

/** Everyone reads the board, only a note's owner writes it (tests/client/test_restore_offers.py). */
const OWNER_RULES = `
[auth]
mode = "enforce"
password_memory_kib = 64
password_time_cost = 1
rate_auth_per_ip = 0

[collections.board]
owner = "owner"
rules.read = "true"
rules.write = "auth.uid == doc.owner"
`;

/** A started node (with `config`) and a folder for its backups, both removed after the test. */
async function nodeWithBackups(config?: string): Promise<{ node: Node; backups: string }> {
  const node = new Node(await freePort(), config === undefined ? {} : { config });
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

  it("brings back only what its user could write: the node refuses the offer of another's note", { timeout: 120_000 }, async () => {
    const { node, backups } = await nodeWithBackups(OWNER_RULES);
    const ann = await openClient({ endpoints: [node.url] });
    const bob = await openClient({ endpoints: [node.url] });
    await ann.auth.signUp("ann@example.com", "correct horse battery");
    await bob.auth.signUp("bob@example.com", "correct horse battery");
    await node.cli("backup", "--to", `file://${backups}`, "--name", "b");
    await ann.collection("board").set("ann-note", { text: "Ann's" });
    await bob.collection("board").set("bob-note", { text: "Bob's" });
    await settled(ann);
    await settled(bob);
    await vi.waitFor(async () => expect((await bob.collection("board").query({})).map((d) => d.id)).toEqual(["ann-note", "bob-note"]), WAIT);
    await ann.close(); // only Bob's device is there to help

    await node.stop();
    await node.cli("restore", "--from", `file://${backups}`, "--backup", "b");
    await node.start();
    bob.syncNow();
    await vi.waitFor(async () => expect((await bob.rejections()).map((r) => [r.id, r.problem.type])).toEqual([["ann-note", "forbidden"]]), WAIT);
    await settled(bob);
    const pulled = await fetch(`${node.url}/v1/sync/pull?limit=100`, { headers: await bob.auth.headers() });
    const ids = ((await pulled.json()) as { changes: { id: string }[] }).changes.map((c) => c.id);
    expect(ids).toEqual(["bob-note"]); // Bob's came back, Ann's did not
    expect(await bob.collection("board").get("ann-note")).toBeNull(); // and Bob's device shows the node's board
  });
});
