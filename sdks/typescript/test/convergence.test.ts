// Property: any arrival order and any grouping of the same mutations give the same state (I4),
// and pending writes rebased over any server state show what the server will hold.
import { describe, expect, it } from "vitest";

import type { Position } from "../src/counter.js";
import { apply, deltaFor, emptyState, join, settle, visible } from "../src/document.js";
import type { JsonObject, Op, State } from "../src/document.js";
import { encodeStamp } from "../src/hlc.js";
import { rebase } from "../src/rebase.js";
import { prng } from "./prng.js";


interface M {
  op: Op;
  data: JsonObject | null;
  hlc: string;
  id: string;
}

function mutations(random: () => number, count: number): M[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const ops: Op[] = ["set", "patch", "delete", "increment"];
  return Array.from({ length: count }, (_, i) => {
    const op = pick(ops);
    const field = pick(["a", "b", "n"]);
    const value = pick<number | string | null>([1, 2.5, "x", null]);
    const data: JsonObject | null =
      op === "delete" ? null : op === "increment" ? { n: pick([1, -2, 0.5]) } : { [field]: op === "set" && value === null ? 0 : value };
    // Few distinct wall times and nodes, so equal walls and counters occur often.
    return { op, data, hlc: encodeStamp(Math.floor(random() * 4), Math.floor(random() * 2), pick(["p", "q"])), id: `m${i}` };
  });
}

const fold = (list: readonly M[]): State => list.reduce((s, m) => join(s, deltaFor(m.op, m.data, m.hlc, m.id)), emptyState());

/**
 * What a node computes applying the mutations in this order, folding each increment as it
 * commits (one region), and the feed position it gave each.
 */
function serverApply(list: readonly M[]): { state: State; positions: Map<string, Position> } {
  let state = emptyState();
  const positions = new Map<string, Position>();
  list.forEach((m, i) => {
    state = settle(apply(state, m.op, m.data, m.hlc, m.id), m.id, "o", i + 1, { o: i + 1 });
    positions.set(m.id, ["o", i + 1]);
  });
  return { state, positions };
}

const pendingOf = (m: M, position: Position | null = null) => ({ op: m.op, data: m.data, hlc: m.hlc, mutationId: m.id, position });

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

describe("merge convergence", () => {
  it.each(Array.from({ length: 200 }, (_, seed) => seed))("seed %i: every order and grouping agrees", (seed) => {
    const random = prng(seed);
    const list = mutations(random, 1 + Math.floor(random() * 8));
    const expected = fold(list);
    const other = shuffled(list, random);
    expect(fold(other)).toEqual(expected);
    const cut = Math.floor(random() * list.length);
    expect(join(fold(other.slice(cut)), fold(other.slice(0, cut)))).toEqual(expected);
    expect(fold([...list, ...list])).toEqual(expected); // a retry arriving again changes nothing
  });

  it.each(Array.from({ length: 200 }, (_, seed) => seed))("seed %i: the local view is the server's document", (seed) => {
    // Any split into what the server has (folded) and what is pending, with up to two of the
    // server's mutations still in the outbox as acknowledged entries: the device shows the
    // server's final document once the server applies the pending ones in the order pushed.
    const random = prng(seed);
    const list = mutations(random, 1 + Math.floor(random() * 8));
    const onServer = shuffled(list, random);
    const known = onServer.slice(0, Math.floor(random() * (list.length + 1)));
    const { state, positions } = serverApply(known);
    const pending = list.filter((m) => !known.includes(m));
    const acked = known.length > 0 ? Array.from({ length: Math.floor(random() * 3) }, () => known[Math.floor(random() * known.length)] as M) : [];
    const local = rebase(state, [...acked.map((m) => pendingOf(m, positions.get(m.id) ?? null)), ...pending.map((m) => pendingOf(m))]);
    expect(visible(local)).toEqual(visible(serverApply([...known, ...pending]).state));
  });

  it("counts an acknowledged increment the server already folded once", () => {
    const increment: M = { op: "increment", data: { n: 2 }, hlc: encodeStamp(1, 0, "d"), id: "m1" };
    const { state, positions } = serverApply([increment]);
    expect(visible(rebase(state, [pendingOf(increment, positions.get("m1") ?? null)]))).toEqual({ n: 2 });
  });
});
