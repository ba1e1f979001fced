// The golden vectors of sdks/vectors (made by the Python core): this SDK computes the same.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

import { canonicalJson } from "../src/canonical.js";
import { advance, covers, decodeCursor, encodeCursor, mergeVectors } from "../src/cursor.js";
import { deltaFor, emptyState, isDeleted, join, newestWrite, visible } from "../src/document.js";
import type { JsonObject, Op, State } from "../src/document.js";
import { decodeStamp, HybridClock } from "../src/hlc.js";
import { buildQuery, runQuery } from "../src/query.js";
import type { Where } from "../src/query.js";
import { rebase, viewOf } from "../src/rebase.js";

function load<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../../vectors/${name}.json`, import.meta.url), "utf-8")) as T;
}

interface WireMutation {
  op: Op;
  data: JsonObject | null;
  hlc: string;
  mutation_id: string;
}
interface ClockRun {
  node: string;
  events: { event: "now" | "observe"; physical: number; stamp?: string; result: string }[];
}
interface HlcVectors {
  decode: { stamp: string; decoded: [number, number, string] }[];
  invalid: string[];
  sorted: string[];
  clocks: ClockRun[];
}
interface DocumentCase {
  name: string;
  mutations: WireMutation[];
  deltas: State[];
  state: State;
  visible: JsonObject | null;
  newest: string;
  deleted: boolean;
}
interface RebaseCase {
  name: string;
  server: State | null;
  pending: WireMutation[];
  visible: JsonObject | null;
  newest: string;
}
type Vector = Record<string, number>;
interface CursorVectors {
  encode: { vector: Vector; cursor: string }[];
  invalid: string[];
  advance: { vector: Vector; changes: [string, number][]; result: Vector }[];
  merge: { left: Vector; right: Vector; result: Vector }[];
  covers: { vector: Vector; origin: string; seq: number; result: boolean }[];
}
interface QueryVectors {
  docs: Record<string, JsonObject>;
  queries: { where?: Where; order_by?: string; limit?: number; ids: string[] }[];
}

const pending = (list: WireMutation[]) => list.map((m) => ({ op: m.op, data: m.data, hlc: m.hlc, mutationId: m.mutation_id }));
const fold = (list: WireMutation[]): State =>
  list.reduce((state, m) => join(state, deltaFor(m.op, m.data, m.hlc, m.mutation_id)), emptyState());

describe("hlc vectors", () => {
  const vectors = load<HlcVectors>("hlc");
  it.each(vectors.decode)("decodes $stamp", ({ stamp, decoded }) => {
    const { wallMs, counter, node } = decodeStamp(stamp);
    expect([wallMs, counter, node]).toEqual(decoded);
  });
  it.each(vectors.invalid)("refuses %j", (stamp) => {
    expect(() => decodeStamp(stamp)).toThrow(/not a valid HLC stamp/);
  });
  it("orders stamps as strings", () => {
    expect([...vectors.sorted].reverse().sort()).toEqual(vectors.sorted);
  });
  it.each(vectors.clocks.map((run, i) => [i, run] as const))("clock run %i", (_, run) => {
    let physical = 0;
    const clock = new HybridClock(run.node, () => physical);
    for (const event of run.events) {
      physical = event.physical;
      if (event.stamp !== undefined) clock.observe(event.stamp);
      expect(clock.now()).toBe(event.result);
    }
  });
});

describe("canonical JSON vectors", () => {
  it.each(load<{ cases: { value: unknown; canonical: string }[] }>("canonical").cases)("$canonical", (c) => {
    expect(canonicalJson(c.value)).toBe(c.canonical);
  });
});

describe("document vectors", () => {
  it.each(load<{ cases: DocumentCase[] }>("document").cases)("$name", (c) => {
    expect(c.mutations.map((m) => deltaFor(m.op, m.data, m.hlc, m.mutation_id))).toEqual(c.deltas);
    const forward = fold(c.mutations);
    expect(forward).toEqual(c.state);
    expect(fold([...c.mutations].reverse())).toEqual(c.state);
    const half = Math.floor(c.mutations.length / 2);
    expect(join(fold(c.mutations.slice(0, half)), fold(c.mutations.slice(half)))).toEqual(c.state);
    expect(newestWrite(forward)).toBe(c.newest);
    expect(isDeleted(forward)).toBe(c.deleted);
    expect(visible(forward)).toEqual(c.visible);
  });
});

describe("rebase vectors", () => {
  it.each(load<{ cases: RebaseCase[] }>("rebase").cases)("$name", (c) => {
    const view = viewOf(rebase(c.server, pending(c.pending)));
    expect(view).toEqual({ data: c.visible, hlc: c.newest });
  });
});

describe("cursor vectors", () => {
  const vectors = load<CursorVectors>("cursor");
  it.each(vectors.encode)("encodes $cursor", ({ vector, cursor }) => {
    expect(encodeCursor(vector)).toBe(cursor);
    expect(decodeCursor(cursor)).toEqual(vector);
  });
  it.each(vectors.invalid)("refuses %j", (cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(/cursor/);
  });
  it("hands each decode its own vector: changing one changes no later decode", () => {
    const cursor = encodeCursor({ "eu-1": 4, "us-1": 2 });
    const first = decodeCursor(cursor);
    first["eu-1"] = 9;
    delete first["us-1"];
    expect(decodeCursor(cursor)).toEqual({ "eu-1": 4, "us-1": 2 });
  });
  it("advances, merges and covers", () => {
    for (const c of vectors.advance) expect(advance(c.vector, c.changes)).toEqual(c.result);
    for (const c of vectors.merge) expect(mergeVectors(c.left, c.right)).toEqual(c.result);
    for (const c of vectors.covers) expect(covers(c.vector, c.origin, c.seq)).toBe(c.result);
  });
});

describe("query vectors", () => {
  const vectors = load<QueryVectors>("query");
  const docs = Object.entries(vectors.docs).map(([id, data]) => ({ id, data }));
  it.each(vectors.queries)("where $where order $order_by limit $limit", (q) => {
    const query = buildQuery("c", q.where, q.order_by, q.limit);
    expect(runQuery(query, docs).map((d) => d.id)).toEqual(q.ids);
  });
});
