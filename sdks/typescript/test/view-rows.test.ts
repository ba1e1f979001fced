// The local view's storage (docs/adr/0048-view-rows-for-pending-documents.md): a `docs` row only
// for documents with outbox entries; the others show their server state.
import { describe, expect, it } from "vitest";

import { encodeCursor } from "../src/cursor.js";
import { deltaFor, emptyState, join } from "../src/document.js";
import { LocalStore } from "../src/local-store.js";
import type { PulledChange } from "../src/local-store.js";
import { buildQuery } from "../src/query.js";
import { MemoryStorage } from "../src/storage/memory.js";

async function openStore(storage: MemoryStorage): Promise<LocalStore> {
  let now = 1_000;
  const store = new LocalStore(storage, () => now++, () => "dev1");
  await store.open();
  return store;
}

const pulled = (id: string, data: Record<string, string | number>, hlc = "0000000000500-0000-srv"): PulledChange => ({
  collection: "todos",
  id,
  op: "set",
  state: join(emptyState(), deltaFor("set", data, hlc, `srv.${id}`)),
});

const viewKeys = async (storage: MemoryStorage): Promise<string[]> => (await storage.list("docs")).map(([key]) => key);

describe("the local view's rows", () => {
  it("stores a pulled document without pending writes as its server state alone, and reads it back", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    const { seq } = await store.snapshot(buildQuery("todos"));
    await store.applyPage([pulled("t1", { title: "a" }), pulled("t2", { title: "b" })], encodeCursor({ r: 2 }), { r: 2 }, true);
    expect(await viewKeys(storage)).toEqual([]);
    expect(await store.get("todos", "t1")).toMatchObject({ data: { title: "a" }, pending: false });
    expect((await store.query(buildQuery("todos"))).map((d) => d.id)).toEqual(["t1", "t2"]);
    expect(store.changesSince("todos", seq)?.docs.get("t2")?.data).toEqual({ title: "b" });
  });

  it("rebases a pulled document on its pending write, and drops its row once the write settles", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    await store.applyPage([pulled("t1", { title: "a", n: 1 })], encodeCursor({ r: 1 }), { r: 1 }, false);
    const { entry } = await store.write("todos", "t1", "patch", { title: "mine" });
    await store.applyPage([pulled("t1", { title: "a", n: 2 }, "0000000000400-0000-srv")], encodeCursor({ r: 2 }), { r: 2 }, false);
    expect(await store.get("todos", "t1")).toMatchObject({ data: { title: "mine", n: 1 }, pending: true });
    expect(await viewKeys(storage)).toEqual(["todos/t1"]);
    await store.recordAcks([[entry.mutationId, "r", 3]]);
    const merged = join(pulled("t1", { title: "a", n: 1 }).state ?? emptyState(), deltaFor("patch", { title: "mine" }, entry.hlc, entry.mutationId));
    await store.applyPage([{ collection: "todos", id: "t1", op: "patch", state: merged }], encodeCursor({ r: 3 }), { r: 3 }, true);
    expect(store.entries()).toEqual([]);
    expect(await viewKeys(storage)).toEqual([]);
    expect(await store.get("todos", "t1")).toMatchObject({ data: { title: "mine", n: 1 }, pending: false });
  });

  it("shows a write made after the first sync at once, in reads and queries", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    await store.applyPage([pulled("t1", { title: "a" }), pulled("t2", { title: "b" })], encodeCursor({ r: 2 }), { r: 2 }, true);
    await store.write("todos", "t2", "patch", { title: "c" });
    await store.write("todos", "t3", "set", { title: "d" });
    await store.write("todos", "t1", "delete", null);
    expect(await store.get("todos", "t1")).toBeNull();
    expect(await store.get("todos", "t2")).toMatchObject({ data: { title: "c" }, pending: true });
    const docs = await store.query(buildQuery("todos"));
    expect(docs.map((d) => [d.id, d.data["title"], d.pending])).toEqual([
      ["t2", "c", true],
      ["t3", "d", true],
    ]);
  });

  it("filters and orders a query over documents stored either way", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    const page = ["a", "b", "c", "d", "e"].map((id, i) => pulled(id, { group: i % 2, rank: 10 - i }));
    await store.applyPage(page, encodeCursor({ r: 5 }), { r: 5 }, true);
    await store.write("todos", "c", "patch", { rank: 0 });
    await store.write("todos", "bb", "set", { group: 0, rank: 7 });
    await store.write("todos", "e", "patch", { group: 1 });
    const docs = await store.query(buildQuery("todos", { group: 0 }, "rank"));
    expect(docs.map((d) => [d.id, d.data["rank"], d.pending])).toEqual([
      ["c", 0, true],
      ["bb", 7, true],
      ["a", 10, false],
    ]);
    expect((await store.snapshot(buildQuery("todos", { group: 1 }))).docs.map((d) => d.id)).toEqual(["b", "d", "e"]);
  });

  it("joins a document a first sync brings twice, and rebases one written before the first sync on its state", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    await store.write("todos", "mine", "patch", { done: 1 });
    await store.applyPage([pulled("t1", { title: "new" }, "0000000000600-0000-srv"), pulled("mine", { title: "m" })], encodeCursor({ r: 2 }), {}, false);
    await store.applyPage([pulled("t1", { title: "old", extra: "e" }, "0000000000400-0000-srv")], encodeCursor({ r: 3 }), {}, true);
    expect((await store.get("todos", "t1"))?.data).toEqual({ title: "new" }); // the newer set wins, though it came first
    expect(await store.get("todos", "mine")).toMatchObject({ data: { title: "m", done: 1 }, pending: true });
    expect(await viewKeys(storage)).toEqual(["todos/mine"]);
  });

  it("drops a row of the earlier layout (every document had one) when its document is pulled again", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    await store.applyPage([pulled("t1", { title: "a" })], encodeCursor({ r: 1 }), { r: 1 }, false);
    await storage.commit([{ table: "docs", key: "todos/t1", value: { data: { title: "a" }, hlc: "0000000000500-0000-srv", pending: false } }]);
    const upgraded = await openStore(storage);
    await upgraded.applyPage([pulled("t1", { title: "b" }, "0000000000600-0000-srv")], encodeCursor({ r: 2 }), { r: 2 }, true);
    expect(await viewKeys(storage)).toEqual([]);
    expect((await upgraded.get("todos", "t1"))?.data).toEqual({ title: "b" });
  });
});
