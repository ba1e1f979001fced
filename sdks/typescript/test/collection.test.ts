// Collections without a network (sync: false): checks before queueing, and live queries.
import { describe, expect, it, vi } from "vitest";

import { Client } from "../src/client.js";
import { ValidationError } from "../src/errors.js";
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
