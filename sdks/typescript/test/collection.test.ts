// Collections without a network (sync: false): checks before queueing, and live queries.
import { describe, expect, it, vi } from "vitest";

import { Client } from "../src/client.js";
import { ValidationError } from "../src/errors.js";
import type { Document } from "../src/local-store.js";
import { MemoryStorage } from "../src/storage/memory.js";

async function offlineClient(): Promise<Client> {
  return Client.open({ endpoints: ["http://unused"], storage: new MemoryStorage(), sync: false });
}

describe("Collection", () => {
  it("refuses a write the node would refuse for its shape, and queues nothing", async () => {
    const client = await offlineClient();
    const todos = client.collection("todos");
    await expect(todos.set("bad/id", { a: 1 })).rejects.toBeInstanceOf(ValidationError);
    await expect(todos.increment("t1", { n: "1" as unknown as number })).rejects.toBeInstanceOf(ValidationError);
    await expect(todos.set("t1", { "": 1 })).rejects.toBeInstanceOf(ValidationError);
    await expect(todos.set("t1", { a: Number.NaN })).rejects.toBeInstanceOf(ValidationError);
    expect(client.outbox()).toEqual([]);
  });

  it("keeps a watch going after its listener throws once", async () => {
    const deferred: (() => void)[] = [];
    const spy = vi.spyOn(globalThis, "queueMicrotask").mockImplementation((task) => deferred.push(task));
    try {
      const client = await offlineClient();
      const todos = client.collection("todos");
      const seen: string[][] = [];
      todos.watch({ orderBy: "title" }, (docs) => {
        seen.push(docs.map((d) => d.id));
        if (seen.length === 1) throw new Error("app bug");
      });
      await vi.waitFor(() => expect(seen).toHaveLength(1));
      await todos.set("t1", { title: "a" });
      await vi.waitFor(() => expect(seen).toEqual([[], ["t1"]]));
      expect(client.outbox()).toHaveLength(1);
      expect(deferred.length).toBeGreaterThan(0);
    } finally {
      spy.mockRestore();
    }
  });
});

describe("Collection.watch, maintained from the changed documents", () => {
  /** A small deterministic generator (mulberry32), so that a failure can be replayed. */
  function random(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it.each([1, 2, 3])("always shows what the query would answer, after writes one by one and in bursts (seed %i)", async (seed) => {
    const next = random(seed);
    const client = await offlineClient();
    const todos = client.collection("todos");
    const options = { where: [["group", "lt", 3]] as const, orderBy: "-title", limit: 7 };
    let shown: Document[] = [];
    const stop = todos.watch(options, (docs) => (shown = docs));
    const write = () => {
      const id = `t${Math.floor(next() * 40)}`;
      const choice = next();
      if (choice < 0.5) return todos.set(id, { title: `n${Math.floor(next() * 20)}`, group: Math.floor(next() * 6) });
      if (choice < 0.8) return todos.patch(id, { group: Math.floor(next() * 6) });
      return todos.delete(id);
    };
    // 300 writes at once reach the watch as one change, beyond what the store's journal keeps:
    // the first 50 match and the 250 after them do not.
    const burst = (round: number) => (_: unknown, i: number) => todos.set(`b${round}-${i}`, { title: `b${i}`, group: i < 50 ? 0 : 5 });
    for (let round = 0; round < 40; round++) {
      if (round % 10 === 9) await Promise.all(Array.from({ length: 300 }, burst(round)));
      else await Promise.all(Array.from({ length: 1 + Math.floor(next() * 3) }, write));
      await new Promise((resolve) => setTimeout(resolve, 0));
      await vi.waitFor(async () => expect(shown).toEqual(await todos.query(options)));
    }
    stop();
    await client.close();
  });
});
