/**
 * A counter field's replicated state, computed exactly as the Python core does
 * (`breakwater/core/counter.py`; docs/adr/0019-compact-counters.md):
 *
 * `b` folded bases `{origin: [upto_seq, sum, newest_hlc]}`: every increment with a position of
 *     `origin` up to `upto_seq` is folded (a G-counter entry: the larger `upto` wins)
 * `i` increments not folded yet `{mutation_id: [hlc, amount, [[origin, seq], ...]]}`; a device's
 *     own increment the node has not acknowledged yet has no positions: `[hlc, amount]`
 * `k` the erase cut `{origin: seq}`: increments and bases at or below it were erased by a reset
 *
 * An increment counts once whatever path it takes: by its mutation id while it is in `i`, and by
 * its positions once a base covers it. Only the node folds; `fold` is here so that tests can play
 * the node's part.
 */

import { canonicalJson, compareCodePoints } from "./canonical.js";

export type Position = [origin: string, seq: number];
export type Base = [upto: number, sum: number, newest: string];
export type Increment = [hlc: string, amount: number] | [hlc: string, amount: number, positions: Position[]];

export interface Counter {
  b?: Record<string, Base>;
  i?: Record<string, Increment>;
  k?: Record<string, number>;
}

/** The format before folding: `{mutation_id: [hlc, amount]}`. */
export type LegacyCounter = Record<string, [string, number]>;

const positionsOf = (increment: Increment): Position[] => increment[2] ?? [];
const comparePositions = ([oa, sa]: Position, [ob, sb]: Position): number => compareCodePoints(oa, ob) || sa - sb;
const below = (cut: Record<string, number>, origin: string): number => cut[origin] ?? -1;

/** Two copies of one mutation's increment: its feed positions are the union of theirs. */
function joinIncrement(left: Increment, right: Increment): Increment {
  if (left.length <= 2 && right.length <= 2) {
    return compareCodePoints(canonicalJson(left), canonicalJson(right)) >= 0 ? left : right;
  }
  const unique = new Map<string, Position>();
  for (const position of [...positionsOf(left), ...positionsOf(right)]) unique.set(JSON.stringify(position), position);
  const positions = [...unique.values()].sort(comparePositions).map(([o, s]): Position => [o, s]);
  return [left[0], left[1], positions];
}

/** The base that covers more of its origin wins; equal coverage falls back to bytes. */
function baseWins(candidate: Base, current: Base): boolean {
  if (candidate[0] !== current[0]) return candidate[0] > current[0];
  return compareCodePoints(canonicalJson(candidate), canonicalJson(current)) > 0;
}

/** The least upper bound of two counters of one field; neither argument is modified. */
export function join(left: Counter, right: Counter): Counter {
  const cut: Record<string, number> = { ...left.k };
  for (const [origin, seq] of Object.entries(right.k ?? {})) if (seq > below(cut, origin)) cut[origin] = seq;
  const bases: Record<string, Base> = { ...left.b };
  for (const [origin, base] of Object.entries(right.b ?? {})) {
    const current = bases[origin];
    if (current === undefined || baseWins(base, current)) bases[origin] = base;
  }
  const increments: Record<string, Increment> = { ...left.i };
  for (const [mutationId, increment] of Object.entries(right.i ?? {})) {
    const current = increments[mutationId];
    increments[mutationId] = current === undefined ? increment : joinIncrement(current, increment);
  }
  return normalize({ b: bases, i: increments, k: cut });
}

/** Erased: a reset's cut covers one of its positions. */
const erased = (increment: Increment, cut: Record<string, number>): boolean =>
  positionsOf(increment).some(([origin, seq]) => seq <= below(cut, origin));

/** Folded: a base covers one of its positions (a fold covers every position it took). */
const folded = (increment: Increment, bases: Record<string, Base>): boolean =>
  positionsOf(increment).some(([origin, seq]) => {
    const base = bases[origin];
    return base !== undefined && seq <= base[0];
  });

/**
 * Drop the increments a base already holds; leave out empty members. Erased increments and
 * bases stay (not counted): dropping them would let a copy under another position count again.
 */
export function normalize(counter: Counter): Counter {
  const bases = counter.b ?? {};
  const increments = Object.entries(counter.i ?? {}).filter(([, increment]) => !folded(increment, bases));
  const result: Counter = {};
  if (Object.keys(bases).length > 0) result.b = bases;
  if (increments.length > 0) result.i = Object.fromEntries(increments);
  if (Object.keys(counter.k ?? {}).length > 0) result.k = { ...counter.k };
  return result;
}

/**
 * The counter after a reset that saw it: positioned increments and bases go through the cut (so
 * the erasure reaches copies that arrive later), a device's unpositioned increments simply go.
 */
export function erase(counter: Counter): Counter {
  const cut: Record<string, number> = { ...counter.k };
  const positions: Position[] = Object.entries(counter.b ?? {}).map(([origin, base]) => [origin, base[0]]);
  for (const increment of Object.values(counter.i ?? {})) positions.push(...positionsOf(increment));
  for (const [origin, seq] of positions) if (seq > below(cut, origin)) cut[origin] = seq;
  const increments = Object.entries(counter.i ?? {}).filter(([, increment]) => positionsOf(increment).length > 0);
  return normalize({ b: counter.b ?? {}, i: Object.fromEntries(increments), k: cut });
}

function live(counter: Counter): [string, Increment][] {
  const cut = counter.k ?? {};
  return Object.entries(counter.i ?? {}).filter(([, increment]) => !erased(increment, cut));
}

/**
 * The bases that count: not erased, and holding at least one live increment's amount. A base
 * also covers the other positions of increments summed under another origin; one that took
 * nothing else has no stamp and adds nothing (counting it brought a removed counter back as 0).
 */
function liveBases(counter: Counter): [string, Base][] {
  const cut = counter.k ?? {};
  return Object.entries(counter.b ?? {})
    .filter(([origin, base]) => base[0] > below(cut, origin) && base[2] !== "")
    .sort(([a], [b]) => compareCodePoints(a, b));
}

/** Whether the counter adds anything to its field (erased increments and bases do not). */
export function counts(counter: Counter): boolean {
  return liveBases(counter).length > 0 || live(counter).length > 0;
}

/**
 * `start` plus every live base and increment, summed in a fixed order (bases by origin, then
 * increments by stamp and id) so that float rounding is equal on every replica.
 */
export function total(counter: Counter, start: number): number {
  let result = start;
  for (const [, base] of liveBases(counter)) result += base[1];
  const ordered = live(counter).sort(([idA, [atA]], [idB, [atB]]) =>
    atA === atB ? compareCodePoints(idA, idB) : atA < atB ? -1 : 1,
  );
  for (const [, increment] of ordered) result += increment[1];
  return result;
}

/** The newest stamp among the live bases and increments ("" for none). */
export function newest(counter: Counter): string {
  let result = "";
  for (const [, base] of liveBases(counter)) if (base[2] > result) result = base[2];
  for (const [, increment] of live(counter)) if (increment[0] > result) result = increment[0];
  return result;
}

/** The counter with mutation `mutationId`'s increment given its feed position. */
export function place(counter: Counter, mutationId: string, origin: string, seq: number): Counter {
  const increment = counter.i?.[mutationId];
  if (increment === undefined) return counter;
  const placed = joinIncrement(increment, [increment[0], increment[1], [[origin, seq]]]);
  return { ...counter, i: { ...counter.i, [mutationId]: placed } };
}

/**
 * Move the increments `stable` covers into their origin's base, in position order (the node's
 * fold; `stable` must be causally stable for the replica that folds). No base may pass a
 * position of an increment that does not fold now, and holding one back can hold back others.
 */
export function fold(counter: Counter, stable: Record<string, number>): Counter {
  const cut = counter.k ?? {};
  const positioned = new Map(Object.entries(counter.i ?? {}).map(([mid, inc]) => [mid, positionsOf(inc)]));
  const ripe = new Set([...positioned].filter(([, ps]) => ps.length > 0).map(([mid]) => mid));
  for (;;) {
    const limit: Record<string, number> = { ...stable };
    for (const [mid, positions] of positioned) {
      if (ripe.has(mid)) continue;
      for (const [origin, seq] of positions) limit[origin] = Math.min(seq - 1, limit[origin] ?? 0);
    }
    const held = [...ripe].filter((mid) => (positioned.get(mid) ?? []).some(([o, s]) => s > (limit[o] ?? 0)));
    if (held.length === 0) break;
    for (const mid of held) ripe.delete(mid);
  }
  if (ripe.size === 0) return counter;
  const first = (mid: string): Position => [...(positioned.get(mid) ?? [])].sort(comparePositions)[0] as Position;
  const order = [...ripe].sort((a, b) => comparePositions(first(a), first(b)) || compareCodePoints(a, b));
  const increments: Record<string, Increment> = { ...counter.i };
  const bases: Record<string, Base> = { ...counter.b };
  for (const mid of order) {
    const increment = increments[mid] as Increment;
    delete increments[mid];
    const [origin] = first(mid);
    for (const [at, seq] of positionsOf(increment)) {
      let [upto, summed, newestHlc] = bases[at] ?? [0, 0, ""];
      if (upto <= below(cut, at)) [summed, newestHlc] = [0, ""]; // an erased base starts over
      if (at === origin && !erased(increment, cut)) {
        // summed under its first position
        summed += increment[1];
        if (increment[0] > newestHlc) newestHlc = increment[0];
      }
      bases[at] = [Math.max(upto, seq), summed, newestHlc];
    }
  }
  return normalize({ ...counter, b: bases, i: increments });
}

/** Whether `counter` is in the format before folding: `{mutation_id: [hlc, amount]}`. */
export function isLegacy(counter: object): counter is LegacyCounter {
  return Object.values(counter).some((entry) => Array.isArray(entry));
}

