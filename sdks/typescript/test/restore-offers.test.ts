// Devices help a restore (src/restore-offers.ts): what a device offers back to a node restored to
// an earlier point of a document's history, what the offer does there, and how the local store
// queues offers during the resync that follows `410 cursor_unknown`.
import { describe, expect, it } from "vitest";

import { canonicalJson } from "../src/canonical.js";
import { encodeCursor } from "../src/cursor.js";
import { apply, emptyState, visible } from "../src/document.js";
import type { JsonObject, Op, State } from "../src/document.js";
import { LocalStore } from "../src/local-store.js";
import { offerFor } from "../src/restore-offers.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { prng } from "./prng.js";

const stamp = (n: number): string => `${String(1000 + n).padStart(13, "0")}-0000-n`;

/** The document's state before the first of `writes` (`null`) and after each. */
function history(writes: [Op, JsonObject | null][]): (State | null)[] {
  const states: (State | null)[] = [null];
  let state = emptyState();
  writes.forEach(([op, data], n) => {
    state = apply(state, op, data, stamp(n), `m${n}`);
    states.push(state);
  });
  return states;
}

function randomWrites(next: () => number): [Op, JsonObject | null][] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  return Array.from({ length: 1 + Math.floor(next() * 6) }, (): [Op, JsonObject | null] => {
    const op = pick(["set", "patch", "delete"] as const);
    if (op === "delete") return [op, null];
    const data: JsonObject = {};
    for (const field of ["a", "b", "c"]) if (next() < 0.5) data[field] = Math.floor(next() * 10);
    return [op, Object.keys(data).length > 0 ? data : { a: 1 }];
  });
}

describe("offerFor", () => {
  it("offers exactly what an earlier state of the same history lacks, and the offer brings the held document back", async () => {
    const next = prng(20_261_206);
    let offered = 0;
    for (let round = 0; round < 400; round++) {
      const states = history(randomWrites(next));
      const heldAt = 1 + Math.floor(next() * (states.length - 1));
      const nodeAt = Math.floor(next() * states.length);
      const held = states[heldAt] as State;
      const node = states[nodeAt] ?? null;
      const offer = await offerFor("notes", "d", held, node);
      const nothingMore = nodeAt >= heldAt || (node === null && visible(held) === null) || (node !== null && canonicalJson(node) === canonicalJson(held));
      if (nothingMore) {
        expect(offer).toBeNull();
        continue;
      }
      if (offer === null) throw new Error(`no offer: writes ${heldAt} held, ${nodeAt} on the node`);
      offered += 1;
      const merged = apply(node ?? emptyState(), offer.op, offer.data, offer.hlc, offer.mutationId);
      expect(visible(merged)).toEqual(visible(held));
    }
    expect(offered).toBeGreaterThan(50);
  });

  it("does not offer a document holding counters, and names one state by one id", async () => {
    const counted = apply(emptyState(), "increment", { n: 1 }, stamp(0), "m0");
    expect(await offerFor("notes", "d", counted, null)).toBeNull();
    const held = apply(emptyState(), "set", { a: 1 }, stamp(0), "m0");
    const first = await offerFor("notes", "d", held, null);
    expect(first).toEqual({ mutationId: expect.stringMatching(/^restore\.[0-9a-f]{12}\.[0-9a-f]{20}$/), op: "set", data: { a: 1 }, hlc: stamp(0) });
    expect((await offerFor("notes", "d", structuredClone(held), null))?.mutationId).toBe(first?.mutationId);
    expect((await offerFor("notes", "e", held, null))?.mutationId).not.toBe(first?.mutationId);
  });
});

describe("LocalStore after a restore", () => {
  const state = (n: number, data: JsonObject): State => apply(emptyState(), "set", data, stamp(n), `s${n}`);

  async function synced(): Promise<LocalStore> {
    const store = new LocalStore(new MemoryStorage(), () => 5_000, () => "dev1");
    await store.open();
    const changes = [
      { collection: "notes", id: "kept", op: "set", state: state(1, { v: 1 }) },
      { collection: "notes", id: "older", op: "set", state: apply(state(2, { v: 1 }), "patch", { v: 2 }, stamp(3), "s3") },
      { collection: "notes", id: "lost", op: "set", state: state(4, { v: 4 }) },
    ];
    await store.applyPage(changes, encodeCursor({ r: 4 }), { r: 4 }, true);
    return store;
  }

  /** The restored node's feed: `kept` as it was, `older` before its patch, `lost` gone. */
  const restoredPage = [
    { collection: "notes", id: "kept", op: "set", state: state(1, { v: 1 }) },
    { collection: "notes", id: "older", op: "set", state: state(2, { v: 1 }) },
  ];

  it("queues an offer for each document the node lost or holds older, and shows them meanwhile", async () => {
    const store = await synced();
    await store.beginResync(true);
    await store.applyPage(restoredPage.slice(0, 1), encodeCursor({ q: 1 }), {}, false);
    await store.applyPage(restoredPage.slice(1), encodeCursor({ q: 2 }), {}, true);
    const offers = store.entries().map((e) => [e.id, e.op, e.data, e.hlc, e.origin]);
    expect(offers).toEqual([
      ["older", "set", { v: 2 }, stamp(3), null],
      ["lost", "set", { v: 4 }, stamp(4), null],
    ]);
    expect(store.offering).toBe(false);
    expect((await store.get("notes", "lost"))?.data).toEqual({ v: 4 });
    expect((await store.get("notes", "older"))?.data).toEqual({ v: 2 });
  });

  it("offers nothing after a resync that is not a restore, and converges on the node's states", async () => {
    const store = await synced();
    await store.beginResync();
    await store.applyPage(restoredPage, encodeCursor({ q: 2 }), {}, true);
    expect(store.entries()).toEqual([]);
    expect(await store.get("notes", "lost")).toBeNull();
    expect((await store.get("notes", "older"))?.data).toEqual({ v: 1 }); // the node's, not the state held before
  });

  it("shows the node's state again when the node refuses an offer", async () => {
    const store = await synced();
    await store.beginResync(true);
    await store.applyPage(restoredPage, encodeCursor({ q: 2 }), {}, true);
    const older = store.entries().find((e) => e.id === "older");
    await store.reject([[older?.mutationId ?? "", { type: "forbidden" }]]);
    expect((await store.get("notes", "older"))?.data).toEqual({ v: 1 });
  });

  it("keeps offering after a reopen in the middle of the resync", async () => {
    const storage = new MemoryStorage();
    const store = new LocalStore(storage, () => 5_000, () => "dev1");
    await store.open();
    await store.applyPage([{ collection: "notes", id: "lost", op: "set", state: state(4, { v: 4 }) }], encodeCursor({ r: 4 }), { r: 4 }, true);
    await store.beginResync(true);
    const again = new LocalStore(storage, () => 5_000, () => "dev1");
    await again.open();
    await again.applyPage([], encodeCursor({ q: 1 }), {}, true);
    expect(again.entries().map((e) => [e.id, e.data])).toEqual([["lost", { v: 4 }]]);
  });
});
