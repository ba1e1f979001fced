// The device's durable state (src/local-store.ts) over the memory adapter: the outbox rules.
import { describe, expect, it } from "vitest";

import { encodeCursor } from "../src/cursor.js";
import type { Counter } from "../src/counter.js";
import { apply, deltaFor, join, emptyState, settle, visible } from "../src/document.js";
import type { State } from "../src/document.js";
import { LocalStore } from "../src/local-store.js";
import { buildQuery } from "../src/query.js";
import { MemoryStorage } from "../src/storage/memory.js";

async function openStore(storage = new MemoryStorage()): Promise<LocalStore> {
  let now = 1_000;
  const store = new LocalStore(storage, () => now++, () => "dev1");
  await store.open();
  return store;
}

const serverState = (hlc: string, data: Record<string, string>) => join(emptyState(), deltaFor("set", data, hlc, "srv.1"));

describe("LocalStore", () => {
  it("takes in acknowledged writes whose states it derives, each of a document joined with the ones before it", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    await store.write("todos", "t1", "set", { title: "a" });
    await store.write("todos", "t1", "patch", { done: true });
    await store.write("todos", "t2", "set", { title: "b" });
    const changed = await store.recordAcks(
      [
        ["dev1.1", "o", 1],
        ["dev1.2", "o", 2],
        ["dev1.3", "o", 4], // behind a gap (another writer's change is 3): only recorded
      ],
      new Map(),
      { o: 4 },
      new Set(["dev1.1", "dev1.2", "dev1.3"]),
    );
    expect(changed).toEqual(new Set(["todos"]));
    expect(store.cursor).toBe(encodeCursor({ o: 2 }));
    expect(store.entries().map((e) => [e.mutationId, e.seq])).toEqual([["dev1.3", 4]]);
    const again = await openStore(storage); // as committed
    expect(await again.get("todos", "t1")).toMatchObject({ data: { title: "a", done: true }, pending: false });
    expect(again.cursor).toBe(encodeCursor({ o: 2 }));
  });

  it("queues each write with a unique mutation id and keeps it across a reopen", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    await store.write("todos", "t1", "set", { title: "a" });
    await store.write("todos", "t1", "patch", { done: true });
    const again = await openStore(storage);
    expect(again.entries().map((e) => e.mutationId)).toEqual(["dev1.1", "dev1.2"]);
    expect(await again.get("todos", "t1")).toMatchObject({ data: { title: "a", done: true }, pending: true });
    await again.write("todos", "t2", "set", { title: "b" });
    expect(again.entries().map((e) => e.mutationId)).toEqual(["dev1.1", "dev1.2", "dev1.3"]);
  });

  it("tells a live query the documents changed since its sequence, until the journal outgrows its rows", async () => {
    const store = await openStore();
    const page = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({ collection: "todos", id: `t${from + i}`, op: "set", state: serverState("0000000000500-0000-srv", { title: `n${from + i}` }) }));
    const { seq: start } = await store.snapshot(buildQuery("todos"));
    await store.applyPage(page(0, 5000), encodeCursor({ r: 1 }), {}, false);
    const { seq: middle } = await store.snapshot(buildQuery("todos"));
    expect(store.changesSince("todos", start)?.docs.size).toBe(5000);
    expect(store.changesSince("notes", start)?.docs.size).toBe(0);
    await store.applyPage(page(5000, 5000), encodeCursor({ r: 2 }), {}, true);
    expect(store.changesSince("todos", start)).toBeNull(); // 10,000 rows: the first page is forgotten
    const since = store.changesSince("todos", middle);
    expect(since?.docs.size).toBe(5000);
    expect(since?.docs.get("t9999")?.data).toEqual({ title: "n9999" });
  });

  it("rolls a rejected write back to the server's state and keeps the rejection", async () => {
    const store = await openStore();
    await store.applyPage([{ collection: "todos", id: "t1", op: "set", state: serverState("0000000000500-0000-srv", { title: "server" }) }], encodeCursor({ r: 1 }), { r: 1 }, true);
    await store.write("todos", "t1", "patch", { title: "mine" });
    expect((await store.get("todos", "t1"))?.data).toEqual({ title: "mine" });
    const [entry] = store.entries();
    const rejections = await store.reject([[entry?.mutationId ?? "", { type: "forbidden" }]]);
    expect(rejections.map((r) => r.problem.type)).toEqual(["forbidden"]);
    expect(await store.get("todos", "t1")).toMatchObject({ data: { title: "server" }, pending: false });
    expect(store.entries()).toEqual([]);
    expect((await store.rejections()).map((r) => r.mutationId)).toEqual([entry?.mutationId]);
  });

  it("keeps an acknowledged entry until it is stable and pulled back", async () => {
    const store = await openStore();
    const { entry } = await store.write("todos", "t1", "set", { title: "a" });
    await store.recordAcks([[entry.mutationId, "r", 5]]);
    await store.applyPage([], encodeCursor({ r: 5 }), { r: 4 }, true);
    expect(store.entries().map((e) => e.mutationId)).toEqual([entry.mutationId]);
    await store.applyPage([], encodeCursor({ r: 5 }), { r: 5 }, true);
    expect(store.entries()).toEqual([]);
  });

  it("re-pushes acknowledged entries after forgetting acks (failover)", async () => {
    const store = await openStore();
    const { entry } = await store.write("todos", "t1", "set", { title: "a" });
    await store.recordAcks([[entry.mutationId, "r", 5]]);
    expect(store.unsent(10)).toEqual([]);
    await store.forgetAcks();
    expect(store.unsent(10).map((e) => e.mutationId)).toEqual([entry.mutationId]);
  });

  it("pushes acknowledged but unsettled writes again after a resync (the node may have lost them)", async () => {
    const store = await openStore();
    const { entry } = await store.write("todos", "t1", "set", { title: "a" });
    await store.recordAcks([[entry.mutationId, "r", 5]]);
    await store.applyPage([], encodeCursor({ r: 5 }), { r: 4 }, true);
    expect(store.unsent(10)).toEqual([]);
    await store.beginResync();
    expect(store.stable).toEqual({});
    expect(store.unsent(10).map((e) => e.mutationId)).toEqual([entry.mutationId]);
  });

  it("drops documents a completed resync did not bring back, keeping pending writes", async () => {
    const store = await openStore();
    const state = serverState("0000000000500-0000-srv", { title: "gone" });
    await store.applyPage([{ collection: "todos", id: "gone", op: "set", state }], encodeCursor({ r: 1 }), {}, true);
    await store.write("todos", "mine", "set", { title: "local" });
    await store.beginResync();
    await store.applyPage([], encodeCursor({ r: 2 }), {}, true);
    const ids = (await store.query(buildQuery("todos"))).map((d) => d.id);
    expect(ids).toEqual(["mine"]);
    expect(store.entries()).toHaveLength(1);
  });

  it("replaces in a resync the server states it has not brought yet, so a lost store's increment counts once", async () => {
    // d2 pulled increment d1.1 from region a's store, which was lost before replicating; d1
    // re-pushed it to b, which folded it into b's base (ADR 0037).
    const store = await openStore();
    const stamp = "0000000000500-0000-dv1";
    const counterState = (counter: Counter): State => ({ f: {}, s: "", x: "", n: { n: counter } });
    const fromLostStore = counterState({ i: { "d1.1": [stamp, 1, [["a~00000000000a", 5]]] } });
    const folded = counterState({ b: { "b~00000000000b": [3, 1, stamp] } });
    const later = counterState({ b: { "b~00000000000b": [4, 2, stamp] } });
    const page = (state: State) => [{ collection: "stats", id: "likes", op: "increment", state }];
    await store.applyPage(page(fromLostStore), encodeCursor({ "a~00000000000a": 5 }), {}, true);
    expect((await store.get("stats", "likes"))?.data).toEqual({ n: 1 });
    // Joined, the lost position's copy survives the fold: the increment would show twice.
    expect(visible(join(fromLostStore, folded))).toEqual({ n: 2 });
    await store.beginResync();
    await store.applyPage(page(folded), encodeCursor({ "b~00000000000b": 3 }), {}, false);
    expect((await store.get("stats", "likes"))?.data).toEqual({ n: 1 });
    // What the resync brought is joined: an older copy on a later page takes nothing back.
    await store.applyPage(page(later), encodeCursor({ "b~00000000000b": 4 }), {}, false);
    await store.applyPage(page(folded), encodeCursor({ "b~00000000000b": 4 }), {}, true);
    expect((await store.get("stats", "likes"))?.data).toEqual({ n: 2 });
    expect(store.resyncing).toBe(false);
  });

  it("starts a full resync, keeping the outbox, when opened with another scope", async () => {
    const store = await openStore();
    expect(await store.follow(["todos"])).toBe(false); // nothing pulled yet
    await store.applyPage([], encodeCursor({ r: 3 }), {}, true);
    await store.write("todos", "t1", "set", { title: "a" });
    expect(await store.follow(["todos"])).toBe(false);
    expect(await store.follow(["notes", "todos"])).toBe(true);
    expect(store.cursor).toBe("");
    expect(store.entries()).toHaveLength(1);
  });

  it("re-stamps unsent entries after a clock_skew correction, below the node's clock", async () => {
    const store = await openStore();
    await store.write("todos", "t1", "set", { title: "a" });
    const node = "0000000000100-0000-srv";
    expect(await store.restamp(node)).toBe(1);
    const [entry] = store.entries();
    expect((entry?.hlc ?? "") > node).toBe(true);
    expect(entry?.hlc.startsWith("00000000001")).toBe(true);
  });

  it("shows an acknowledged increment the node already folded into a base once", async () => {
    const store = await openStore();
    const { entry } = await store.write("stats", "likes", "increment", { n: 2 });
    await store.recordAcks([[entry.mutationId, "r", 5]]);
    const applied = apply(emptyState(), "increment", { n: 2 }, entry.hlc, entry.mutationId);
    const folded = settle(applied, entry.mutationId, "r", 5, { r: 5 });
    // Not stable yet for the device (stable r=4), so the entry stays in the outbox.
    await store.applyPage([{ collection: "stats", id: "likes", op: "increment", state: folded }], encodeCursor({ r: 5 }), { r: 4 }, true);
    expect(store.entries()).toHaveLength(1);
    expect(await store.get("stats", "likes")).toMatchObject({ data: { n: 2 }, pending: true });
  });

  it("forgets server states with counters from before folding and pulls again, keeping the view", async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage);
    await store.applyPage([{ collection: "todos", id: "t1", op: "set", state: serverState("0000000000500-0000-srv", { title: "a" }) }], encodeCursor({ r: 3 }), {}, true);
    const old = { f: {}, s: "", x: "", n: { n: { "x.1": ["0000000000400-0000-srv", 1], "x.2": ["0000000000401-0000-srv", 1] } } };
    await storage.commit([
      { table: "server", key: "stats/likes", value: { state: old, seen: true } },
      { table: "docs", key: "stats/likes", value: { data: { n: 2 }, hlc: "0000000000401-0000-srv", pending: false } },
      { table: "meta", key: "counter_format", value: undefined },
    ]);
    const again = await openStore(storage);
    expect(again.resyncing).toBe(true);
    expect(again.cursor).toBe("");
    expect(await storage.get("server", "stats/likes")).toBeUndefined();
    expect(await storage.get("server", "todos/t1")).toMatchObject({ seen: false });
    expect((await again.get("stats", "likes"))?.data).toEqual({ n: 2 });
  });
});
