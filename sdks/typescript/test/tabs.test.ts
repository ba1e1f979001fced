// Several tabs on one storage (src/storage/tabs.ts, src/tab-sharing.ts): one leader at a time
// with handover, notices between tabs, and writes from every tab into one outbox.
import { afterEach, describe, expect, it } from "vitest";

import { Client } from "../src/client.js";
import { encodeCursor } from "../src/cursor.js";
import { StaleState } from "../src/errors.js";
import { deltaFor, emptyState, join } from "../src/document.js";
import type { Document } from "../src/local-store.js";
import { LocalStore } from "../src/local-store.js";
import type { StorageAdapter } from "../src/storage/adapter.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { BrowserTabs } from "../src/storage/tabs.js";
import type { TabNotice, Tabs } from "../src/storage/tabs.js";
import { fakeLocks } from "./fake-locks.js";

let serial = 0;
const opened: Tabs[] = [];
afterEach(() => {
  for (const tabs of opened.splice(0)) tabs.close();
});

/** `count` tabs of one browser on the database `name`. */
function browserTabs(count: number, locks = fakeLocks(), name = `db${serial++}`): BrowserTabs[] {
  const tabs = Array.from({ length: count }, () => new BrowserTabs(name, locks, new BroadcastChannel(`breakwater:${name}`)));
  opened.push(...tabs);
  return tabs;
}

/** One tab's view of storage shared with other tabs (one `MemoryStorage` stands for IndexedDB, `update` and all). */
function tabStorage(shared: MemoryStorage, tabs: Tabs): StorageAdapter {
  return {
    get: (table, key) => shared.get(table, key),
    list: (table, prefix) => shared.list(table, prefix),
    commit: (writes) => shared.commit(writes),
    update: (reads, plan) => shared.update(reads, plan),
    close: async () => tabs.close(),
    tabs,
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await settle();
  expect(condition()).toBe(true);
}

describe("BrowserTabs", () => {
  it("lets one tab lead at a time, and hands over in order when the leader closes", async () => {
    const tabs = browserTabs(3);
    const leaders: number[] = [];
    tabs.forEach((tab, i) => tab.lead(() => leaders.push(i)));
    await settle();
    expect(leaders).toEqual([0]);
    tabs[0]?.close();
    await until(() => leaders.length === 2);
    expect(leaders).toEqual([0, 1]);
    tabs[1]?.close();
    await until(() => leaders.length === 3);
    expect(leaders).toEqual([0, 1, 2]);
  });

  it("never lets a tab closed while waiting lead", async () => {
    const [first, second, third] = browserTabs(3);
    const leaders: string[] = [];
    first?.lead(() => leaders.push("first"));
    second?.lead(() => leaders.push("second"));
    third?.lead(() => leaders.push("third"));
    await settle();
    second?.close();
    first?.close();
    await until(() => leaders.length === 2);
    expect(leaders).toEqual(["first", "third"]);
  });

  it("runs exclusive sections of different tabs one at a time", async () => {
    const tabs = browserTabs(4);
    let inside = 0;
    let most = 0;
    await Promise.all(
      tabs.flatMap((tab) =>
        [1, 2, 3].map(() =>
          tab.exclusive(async () => {
            most = Math.max(most, ++inside);
            await new Promise((resolve) => setTimeout(resolve, 1));
            inside--;
          }),
        ),
      ),
    );
    expect(most).toBe(1);
  });

  it("delivers a notice to the other tabs of the database only, and ignores foreign messages", async () => {
    const [sender, receiver] = browserTabs(2);
    const [stranger] = browserTabs(1);
    const seen: { tab: string; notice: TabNotice }[] = [];
    sender?.subscribe((notice) => seen.push({ tab: "sender", notice }));
    receiver?.subscribe((notice) => seen.push({ tab: "receiver", notice }));
    stranger?.subscribe((notice) => seen.push({ tab: "stranger", notice }));
    const raw = new BroadcastChannel(`breakwater:${(sender as unknown as { name: string }).name}`);
    raw.postMessage({ collections: "todos" });
    raw.postMessage(null);
    raw.close();
    sender?.publish({ collections: ["todos"], auth: false });
    await until(() => seen.length >= 1);
    await settle();
    expect(seen).toEqual([{ tab: "receiver", notice: { collections: ["todos"], auth: false } }]);
  });
});

describe("LocalStore on storage shared by tabs", () => {
  it("gives interleaved writes of every tab distinct mutation ids, positions and rising stamps in one outbox", async () => {
    const shared = new MemoryStorage();
    const tabs = browserTabs(3);
    const stores = tabs.map((tab) => new LocalStore(tabStorage(shared, tab), () => 1_000, () => "dev1")); // one frozen clock: stamps rise by their counter
    for (const store of stores) await store.open();
    await Promise.all(stores.flatMap((store, t) => [0, 1, 2, 3].map((i) => store.write("todos", `t${t}-${i}`, "set", { i }))));
    const outbox = (await shared.list("outbox")).map(([, entry]) => entry as { mutationId: string; position: number; hlc: string });
    expect(outbox).toHaveLength(12);
    expect(new Set(outbox.map((e) => e.mutationId)).size).toBe(12);
    expect(outbox.map((e) => e.position)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const stamps = outbox.map((e) => e.hlc);
    expect([...stamps].sort()).toEqual(stamps);
    expect(new Set(stamps).size).toBe(12);
    await stores[0]?.refresh();
    expect(stores[0]?.entries().map((e) => e.mutationId)).toEqual(outbox.map((e) => e.mutationId));
  });
});

describe("LocalStore operations under the cross-tab lock", () => {
  it("fails the operations due when the lock cannot be had, and runs later ones; a local write needs no lock", async () => {
    const [tab] = browserTabs(1);
    let refuse = false;
    const flaky: Tabs = {
      exclusive: (fn) => (refuse ? Promise.reject(new Error("lock refused")) : (tab as Tabs).exclusive(fn)),
      publish: (notice) => tab?.publish(notice),
      subscribe: (listener) => (tab as Tabs).subscribe(listener),
      lead: (onLeader) => tab?.lead(onLeader),
      close: () => tab?.close(),
    };
    const store = new LocalStore(tabStorage(new MemoryStorage(), flaky), () => 1_000, () => "dev1");
    await store.open();
    await settle(); // the grant that ran `open` has ended
    refuse = true;
    await expect(store.putMeta("theme", "dark")).rejects.toThrow("lock refused");
    await store.write("todos", "t1", "set", { n: 1 });
    refuse = false;
    await store.putMeta("theme", "light");
    expect(await store.getMeta("theme")).toBe("light");
    expect(store.entries().map((e) => [e.id, e.mutationId])).toEqual([["t1", "dev1.1"]]);
  });

  it("rejects with StaleState when other tabs' commits keep overtaking an operation, and goes on after", async () => {
    const shared = new MemoryStorage();
    const [tab] = browserTabs(1);
    let busy = false;
    const storage: StorageAdapter = {
      ...tabStorage(shared, tab as Tabs),
      update: async (reads, plan) => {
        const generation = ((await shared.get("meta", "generation")) as number | undefined) ?? 0;
        if (busy) await shared.commit([{ table: "meta", key: "generation", value: generation + 1 }]); // another tab, just before
        return shared.update(reads, plan);
      },
    };
    const store = new LocalStore(storage, () => 1_000, () => "dev1");
    await store.open();
    busy = true;
    await expect(store.write("todos", "t1", "set", { n: 1 })).rejects.toBeInstanceOf(StaleState);
    busy = false;
    await store.write("todos", "t2", "set", { n: 2 });
    expect((await shared.list("outbox")).map(([, e]) => (e as { id: string }).id)).toEqual(["t2"]);
  });

  it("runs an operation again on fresh state when another tab's write committed between its reads and its commit", async () => {
    const shared = new MemoryStorage();
    const [tabA, tabB] = browserTabs(2);
    let meanwhile: (() => Promise<unknown>) | null = null;
    const storageA: StorageAdapter = {
      ...tabStorage(shared, tabA as Tabs),
      get: async (table, key) => {
        const value = await shared.get(table, key);
        const other = meanwhile;
        meanwhile = null;
        await other?.();
        return value;
      },
    };
    const a = new LocalStore(storageA, () => 1_000, () => "dev1");
    const b = new LocalStore(tabStorage(shared, tabB as Tabs), () => 1_000, () => "dev1");
    await a.open();
    await b.open();
    const state = join(emptyState(), deltaFor("set", { title: "server", n: 1 }, "0000000000500-0000-srv", "srv.1"));
    meanwhile = () => b.write("todos", "t1", "patch", { title: "b's" }); // lands while `a` reads the page's stored states
    await a.applyPage([{ collection: "todos", id: "t1", op: "set", state }], encodeCursor({ r: 1 }), {}, true);
    expect(a.entries().map((e) => e.mutationId)).toEqual(["dev1.1"]);
    expect(await a.get("todos", "t1")).toMatchObject({ data: { title: "b's", n: 1 }, pending: true });
    expect(await b.get("todos", "t1")).toMatchObject({ data: { title: "b's", n: 1 }, pending: true });
    expect(await shared.get("meta", "cursor")).toBe(encodeCursor({ r: 1 }));
  });
});

describe("Clients in several tabs", () => {
  it("shows a write of one tab live in another tab's watch, and syncs from one tab only", async () => {
    const shared = new MemoryStorage();
    const [tabA, tabB] = browserTabs(2);
    const open = (tabs: Tabs) =>
      Client.open({ endpoints: ["http://127.0.0.1:9"], storage: tabStorage(shared, tabs), fetch: () => Promise.reject(new TypeError("offline")), backoffBaseMs: 60_000, backoffCapMs: 60_000 });
    const a = await open(tabA as Tabs);
    const b = await open(tabB as Tabs);
    await settle();
    expect([a.leading, b.leading]).toEqual([true, false]);
    const seen: Document[][] = [];
    a.collection("todos").watch({ orderBy: "title" }, (docs) => seen.push(docs));
    await b.collection("todos").set("t1", { title: "from b" });
    await until(() => seen.some((docs) => docs.length === 1));
    expect(seen.at(-1)?.map((d) => d.data["title"])).toEqual(["from b"]);
    expect(a.outbox().map((e) => e.id)).toEqual(["t1"]);
    await a.close();
    await until(() => b.leading);
    await b.close();
  });
});
