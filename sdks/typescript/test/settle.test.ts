// Settling a write from the push answer (docs/protocol.md#settling-a-write-from-the-push-answer-every-sdk)
// against a fake region, on every storage backend: a write that follows the cursor costs one
// push and no pull; a result behind a gap is pulled; an acknowledgement whose record rolls back
// or never commits (a crash) is pushed again, answered `duplicate`, and settles by a pull.
import { afterEach, describe, expect, it, vi } from "vitest";

import { Client } from "../src/client.js";
import { deltaFor } from "../src/document.js";
import type { Read, StorageAdapter, Table, Write } from "../src/storage/adapter.js";
import { BACKENDS } from "./backends.js";
import { FakeDeployment } from "./fake-regions.js";
import type { FakeRegion } from "./fake-regions.js";

const PUSH = "POST /v1/sync/push";
const PULL = "GET /v1/sync/pull";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A storage whose commits fail once `failing` says so: a record rolled back, or an app that died before it committed. */
class FailingStorage implements StorageAdapter {
  failing: () => boolean = () => false;
  failed = 0;

  update?: (reads: readonly Read[], plan: (values: unknown[]) => readonly Write[]) => Promise<void>;

  constructor(private readonly inner: StorageAdapter) {
    const update = inner.update?.bind(inner);
    if (update !== undefined) this.update = (reads, plan) => this.guard(() => update(reads, plan));
  }

  get(table: Table, key: string): Promise<unknown> {
    return this.inner.get(table, key);
  }

  list(table: Table, prefix?: string): Promise<[string, unknown][]> {
    return this.inner.list(table, prefix);
  }

  commit(writes: readonly Write[]): Promise<void> {
    return this.guard(() => this.inner.commit(writes));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async guard(commit: () => Promise<void>): Promise<void> {
    if (this.failing()) {
      this.failed += 1;
      throw new Error("storage: the commit did not happen");
    }
    await commit();
  }
}

/** A one-region fake where everything pushed is stable, and a device on it, synced and following (long-poll held). */
async function setUp(storage: StorageAdapter): Promise<{ region: FakeRegion; deployment: FakeDeployment; client: Client }> {
  const deployment = new FakeDeployment({ a: 0 });
  deployment.stable = { a: 1_000 };
  const region = deployment.region("a");
  const client = await open(storage, deployment);
  await vi.waitFor(() => expect(client.status.state).toBe("online"));
  await vi.waitFor(() => expect(region.held.size).toBe(1)); // realtime follows: changes after now come by notice only
  return { region, deployment, client };
}

async function open(storage: StorageAdapter, deployment: FakeDeployment): Promise<Client> {
  const client = await Client.open({
    endpoints: [deployment.region("a").url],
    storage,
    fetch: deployment.fetch,
    transports: ["long_poll"],
    backoffBaseMs: 5,
    backoffCapMs: 20,
    pollIntervalMs: 600_000, // longer than any test: no pull comes from the safety net
  });
  cleanups.push(() => client.close());
  return client;
}

/** The region's push and pull requests from `from` on (long polls and probes left out). */
const syncCalls = (region: FakeRegion, from = 0): string[] => region.calls.slice(from).filter((c) => c === PUSH || c === PULL);

const settled = (client: Client) => vi.waitFor(() => expect(client.outbox()).toEqual([]));

describe.each(BACKENDS)("settling from the push answer on $name storage", (backend) => {
  it("settles each online write with one push and no pull", async () => {
    const { region, client } = await setUp((await backend.make()).store);
    const before = region.calls.length;
    const todos = client.collection("todos");
    for (let i = 0; i < 5; i++) {
      await todos.set(`t${i}`, { title: `task ${i}` });
      await settled(client);
    }
    expect(syncCalls(region, before)).toEqual([PUSH, PUSH, PUSH, PUSH, PUSH]);
    expect((await todos.query()).map((d) => [d.id, d.pending])).toEqual([0, 1, 2, 3, 4].map((i) => [`t${i}`, false]));
  });

  it("shows the node's state of a write it settled without a pull", async () => {
    const { region, client } = await setUp((await backend.make()).store);
    region.rule = (data) => ({ ...data, owner: "u1" }); // what the node wrote differs from what the device sent
    const before = region.calls.length;
    const todos = client.collection("todos");
    await todos.set("t1", { title: "milk" });
    expect(await todos.get("t1")).toMatchObject({ data: { title: "milk" }, pending: true });
    await settled(client);
    expect(await todos.get("t1")).toMatchObject({ data: { title: "milk", owner: "u1" }, pending: false });
    expect(syncCalls(region, before)).toEqual([PUSH]);
  });

  it("pulls when its result lies behind a gap, and takes the next one in", async () => {
    const { region, client } = await setUp((await backend.make()).store);
    const before = region.calls.length;
    // Another writer's change, which the device has not heard of: its own write lands right after it.
    region.apply({ origin: "a", seq: 1, collection: "notes", id: "n1", op: "set", mutationId: "other.1", delta: deltaFor("set", { text: "hi" }, "1000000000000-0000-other", "other.1") });
    const todos = client.collection("todos");
    await todos.set("t1", { title: "milk" });
    await settled(client);
    expect(syncCalls(region, before)).toEqual([PUSH, PULL]);
    expect(await client.collection("notes").get("n1")).toMatchObject({ data: { text: "hi" }, pending: false });
    await todos.set("t2", { title: "eggs" });
    await settled(client);
    expect(syncCalls(region, before)).toEqual([PUSH, PULL, PUSH]);
    expect((await todos.query()).map((d) => [d.id, d.pending])).toEqual([
      ["t1", false],
      ["t2", false],
    ]);
  });

  it("pushes again after the record of an answer rolls back, and settles on the duplicate's pull", async () => {
    const storage = new FailingStorage((await backend.make()).store);
    const { region, client } = await setUp(storage);
    const before = region.calls.length;
    const duplicates: string[] = [];
    client.on("acknowledged", ({ duplicates: ids }) => duplicates.push(...ids));
    storage.failing = () => storage.failed === 0 && region.pushed.length === 1; // the first answer's record, once
    const todos = client.collection("todos");
    await todos.set("t1", { title: "milk" });
    await settled(client);
    expect(storage.failed).toBe(1);
    expect(duplicates).toEqual([region.pushed[0]]);
    expect(region.pushed).toEqual([region.pushed[0], region.pushed[0]]);
    expect(syncCalls(region, before)).toEqual([PUSH, PUSH, PULL]);
    expect(await todos.get("t1")).toMatchObject({ data: { title: "milk" }, pending: false });
  });

  it("pushes again after a crash before the answer was recorded, and settles", async () => {
    const made = await backend.make();
    const storage = new FailingStorage(made.store);
    const { region, deployment, client } = await setUp(storage);
    storage.failing = () => region.pushed.length > 0; // the app dies with the answer in hand: nothing more commits
    await client.collection("todos").set("t1", { title: "milk" });
    await vi.waitFor(() => expect(storage.failed).toBeGreaterThan(0));
    await client.close();

    const again = await open(await made.reopen(), deployment);
    const duplicates: string[] = [];
    again.on("acknowledged", ({ duplicates: ids }) => duplicates.push(...ids));
    await vi.waitFor(() => expect(again.outbox()).toEqual([]));
    expect(duplicates).toEqual([region.pushed[0]]);
    expect(region.feed.map((c) => c.mutationId)).toEqual([region.pushed[0]]); // applied once
    expect(await again.collection("todos").get("t1")).toMatchObject({ data: { title: "milk" }, pending: false });
  });
});
