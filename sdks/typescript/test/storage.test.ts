// One contract suite for every storage adapter (src/storage/adapter.ts), reopened where durable.
import { IDBFactory, IDBKeyRange } from "fake-indexeddb";
import { describe, expect, it } from "vitest";

import type { StorageAdapter, Write } from "../src/storage/adapter.js";
import { IndexedDbStorage } from "../src/storage/indexeddb.js";
import { BACKENDS } from "./backends.js";
import { fakeLocks } from "./fake-locks.js";

describe.each(BACKENDS)("$name storage", (backend) => {
  it("returns what was committed, and undefined for what was not", async () => {
    const { store } = await backend.make();
    await store.commit([{ table: "docs", key: "todos/t1", value: { data: { a: [1, "é"] }, n: null } }]);
    expect(await store.get("docs", "todos/t1")).toEqual({ data: { a: [1, "é"] }, n: null });
    expect(await store.get("docs", "todos/t2")).toBeUndefined();
    expect(await store.get("server", "todos/t1")).toBeUndefined();
  });

  it("commits in an update what its plan makes of the values it read", async () => {
    const { store } = await backend.make();
    await store.commit([{ table: "meta", key: "n", value: 1 }]);
    await (store.update as NonNullable<StorageAdapter["update"]>)(
      [
        ["meta", "n"],
        ["docs", "none"],
      ],
      ([n, none]) => [
        { table: "meta", key: "n", value: (n as number) + 1 },
        { table: "docs", key: "seen", value: none === undefined },
      ],
    );
    expect(await store.get("meta", "n")).toBe(2);
    expect(await store.get("docs", "seen")).toBe(true);
  });

  it("writes nothing of an update whose plan throws, and rejects with its error", async () => {
    const { store } = await backend.make();
    await store.commit([{ table: "meta", key: "n", value: 1 }]);
    const update = (store.update as NonNullable<StorageAdapter["update"]>).bind(store);
    const refuse = (): Write[] => {
      throw new Error("refused");
    };
    await expect(update([["meta", "n"]], refuse)).rejects.toThrow("refused");
    expect(await store.get("meta", "n")).toBe(1);
  });

  it("lists a prefix in key order", async () => {
    const { store } = await backend.make();
    await store.commit(["b/2", "a/1", "b/10", "b/1", "bb/1"].map((key) => ({ table: "docs" as const, key, value: key })));
    expect((await store.list("docs", "b/")).map(([key]) => key)).toEqual(["b/1", "b/10", "b/2"]);
    expect((await store.list("docs")).length).toBe(5);
  });

  it("deletes with an undefined value", async () => {
    const { store } = await backend.make();
    await store.commit([{ table: "meta", key: "k", value: 1 }]);
    await store.commit([{ table: "meta", key: "k", value: undefined }]);
    expect(await store.get("meta", "k")).toBeUndefined();
  });

  it("hands out copies: changing a value read or written changes nothing stored", async () => {
    const { store } = await backend.make();
    const value = { list: [1] };
    await store.commit([{ table: "meta", key: "k", value }]);
    value.list.push(2);
    const read = (await store.get("meta", "k")) as { list: number[] };
    read.list.push(3);
    expect(await store.get("meta", "k")).toEqual({ list: [1] });
  });

  it("keeps what was committed across a close and reopen", async () => {
    const { store, reopen } = await backend.make();
    await store.commit([
      { table: "outbox", key: "000000000000001", value: { op: "set" } },
      { table: "meta", key: "cursor", value: "c1.x" },
    ]);
    await store.close();
    const again = await reopen();
    expect(await again.get("meta", "cursor")).toBe("c1.x");
    expect(await again.list("outbox")).toEqual([["000000000000001", { op: "set" }]]);
    await again.close();
  });
});

describe("IndexedDbStorage.getMany", () => {
  it("reads many keys in one go, in their order, undefined for those missing", async () => {
    const store = await IndexedDbStorage.open("getmany", new IDBFactory(), IDBKeyRange);
    await store.commit([{ table: "server", key: "a", value: { n: 1 } }, { table: "server", key: "c", value: { n: 3 } }]);
    expect(await store.getMany("server", ["c", "b", "a"])).toEqual([{ n: 3 }, undefined, { n: 1 }]);
    expect(await store.getMany("server", [])).toEqual([]);
  });
});

describe("IndexedDbStorage in several tabs", () => {
  it("lets a second tab open the database, and coordinates the tabs only where Web Locks exist", async () => {
    const factory = new IDBFactory();
    const first = await IndexedDbStorage.open("shared", factory, IDBKeyRange, fakeLocks());
    const second = await IndexedDbStorage.open("shared", factory, IDBKeyRange, fakeLocks());
    await first.commit([{ table: "meta", key: "k", value: 1 }]);
    expect(await second.get("meta", "k")).toBe(1);
    expect(first.tabs).toBeDefined();
    const alone = await IndexedDbStorage.open("alone", factory, IDBKeyRange, undefined);
    expect(alone.tabs).toBeUndefined();
    await Promise.all([first.close(), second.close(), alone.close()]);
  });
});
