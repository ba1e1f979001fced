/**
 * Document state as a state-based CRDT and its join, computed exactly as the Python core does
 * (`breakwater/core/document.py`; the golden vectors in sdks/vectors prove it):
 *
 * `f` field registers `{name: [hlc, value]}`; `[hlc]` alone marks the field removed at `hlc`
 * `s` HLC of the newest `set`, `x` HLC of the newest `delete`
 * `n` counters `{name: counter}` (`counter.ts`: folded bases, increments in flight, erase cut)
 *
 * A mutation becomes a small state (`deltaFor`) and applying it is `join`: commutative,
 * associative and idempotent, so a device and a node holding the same mutations hold the same state.
 * A reset (`set`, `delete`, or `patch` of the field) that is the field's newest write when it is
 * first applied erases the counter increments that replica holds (`apply`).
 */

import { canonicalJson, compareCodePoints } from "./canonical.js";
import * as counter from "./counter.js";
import type { Counter, Position } from "./counter.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };
export type Register = [string] | [string, Json];

export interface State {
  f: Record<string, Register>;
  s: string;
  x: string;
  n: Record<string, Counter>;
}

export type Op = "set" | "patch" | "delete" | "increment";

export function emptyState(): State {
  return { f: {}, s: "", x: "", n: {} };
}

const max = (a: string, b: string): string => (a > b ? a : b);

/** Equal stamps (only a buggy writer makes them) fall back to canonical bytes. */
function wins(candidate: unknown[], current: unknown[]): boolean {
  if (candidate[0] !== current[0]) return String(candidate[0]) > String(current[0]);
  return compareCodePoints(canonicalJson(candidate), canonicalJson(current)) > 0;
}

/** The least upper bound of two states; neither argument is modified. */
export function join(left: State, right: State): State {
  if (Object.keys(left.f).length === 0 && Object.keys(left.n).length === 0 && !left.s && !left.x) {
    return normalize(right); // the common case of a new document
  }
  const fields: Record<string, Register> = { ...left.f };
  for (const [name, register] of Object.entries(right.f)) {
    const current = fields[name];
    if (current === undefined || wins(register, current)) fields[name] = register;
  }
  const counters: Record<string, Counter> = { ...left.n };
  for (const [name, theirs] of Object.entries(right.n)) {
    const mine = counters[name];
    counters[name] = mine === undefined ? theirs : counter.join(mine, theirs);
  }
  return normalize({ f: fields, s: max(left.s, right.s), x: max(left.x, right.x), n: counters });
}

const resetOf = (state: State): string => max(state.s, state.x);

/** Drop registers and increments that no future join can make visible again. */
export function normalize(state: State): State {
  const fields: Record<string, Register> = {};
  for (const [name, register] of Object.entries(state.f)) {
    // A set's own fields carry the set's HLC, so they survive it; a delete kills its equals too.
    if (register[0] >= state.s && register[0] > state.x) fields[name] = register;
  }
  const counters: Record<string, Counter> = {};
  for (const [name, value] of Object.entries(state.n)) {
    const kept = counter.normalize(value);
    if (Object.keys(kept).length > 0) counters[name] = kept;
  }
  return { f: fields, s: state.s, x: state.x, n: counters };
}

/** The HLC of the newest write still visible (or of the newest delete). */
export function newestWrite(state: State): string {
  let newest = max(state.s, state.x);
  for (const register of Object.values(state.f)) newest = max(newest, register[0]);
  for (const value of Object.values(state.n)) newest = max(newest, counter.newest(value));
  return newest;
}

/** Deleted: the newest write is a delete (or nothing was ever written). */
export function isDeleted(state: State, newest: string = newestWrite(state)): boolean {
  return state.x ? state.x >= newest : newest === "";
}

/** The document as users see it, or `null` when it is deleted (a tombstone). */
export function visible(state: State, newest: string = newestWrite(state)): JsonObject | null {
  if (isDeleted(state, newest)) return null;
  const data: JsonObject = {};
  for (const [name, register] of Object.entries(state.f)) {
    if (register.length === 2) data[name] = register[1];
  }
  for (const [name, value] of Object.entries(state.n)) {
    if (!counter.counts(value)) continue;
    const register = state.f[name];
    const base = register?.length === 2 && typeof register[1] === "number" ? register[1] : 0;
    data[name] = counter.total(value, base);
  }
  return data;
}

/** The state a mutation contributes; joining it is applying the mutation. */
export function deltaFor(op: Op, data: JsonObject | null, hlc: string, mutationId: string): State {
  const delta = emptyState();
  const entries = Object.entries(data ?? {});
  switch (op) {
    case "set":
      delta.s = hlc;
      delta.f = Object.fromEntries(entries.map(([name, value]) => [name, [hlc, value]]));
      break;
    case "patch":
      delta.f = Object.fromEntries(
        entries.map(([name, value]): [string, Register] => [name, value === null ? [hlc] : [hlc, value]]),
      );
      break;
    case "delete":
      delta.x = hlc;
      break;
    case "increment":
      delta.n = Object.fromEntries(entries.map(([name, amount]) => [name, { i: { [mutationId]: [hlc, amount as number] } }]));
      break;
  }
  return delta;
}

/** The stamp of the newest write that reset field `name` (a set, a delete or its own write). */
function floorOf(state: State, name: string): string {
  const register = state.f[name];
  return register === undefined ? resetOf(state) : max(resetOf(state), register[0]);
}

/**
 * The erase cuts of a reset at `hlc` of the counters `names`: it erases what this replica holds
 * of each counter for which it is the newest write (a late, older reset erases nothing).
 */
function eraseFor(state: State, names: Iterable<string>, hlc: string): Record<string, Counter> {
  const cuts: Record<string, Counter> = {};
  for (const name of names) {
    const current = state.n[name];
    if (current !== undefined && hlc > floorOf(state, name)) cuts[name] = counter.erase(current);
  }
  return cuts;
}

/**
 * Apply a mutation to `state` as the node does where it is first applied (the Python core's
 * `document.apply`, the same state); the device uses it over its server state. `position` is the
 * increment's feed position once acknowledged, so that a base that folded it is seen to cover it.
 * A `set` newer than every write replaces everything but the delete stamp and the erase cuts.
 */
export function apply(
  state: State,
  op: Op,
  data: JsonObject | null,
  hlc: string,
  mutationId: string,
  position: Position | null = null,
): State {
  const resets = op === "set" || op === "delete" || (op === "patch" && data !== null && Object.keys(data).length > 0);
  const erased = resets ? eraseFor(state, op === "patch" ? Object.keys(data ?? {}) : Object.keys(state.n), hlc) : {};
  if (op === "set" && data !== null && hlc > newestWrite(state)) {
    const fields = Object.fromEntries(Object.entries(data).map(([name, value]): [string, Register] => [name, [hlc, value]]));
    const cuts = Object.entries(erased).filter(([, cut]) => Object.keys(cut).length > 0);
    return { f: fields, s: hlc, x: state.x, n: Object.fromEntries(cuts) };
  }
  const delta = deltaFor(op, data, hlc, mutationId);
  if (op === "increment" && position !== null) {
    for (const [name, value] of Object.entries(delta.n)) delta.n[name] = counter.place(value, mutationId, ...position);
  }
  Object.assign(delta.n, erased);
  const joined = join(state, delta);
  for (const name of Object.keys(erased)) {
    // a device's own unpositioned increments go too
    const kept = counter.erase(joined.n[name] ?? {});
    if (Object.keys(kept).length > 0) joined.n[name] = kept;
    else delete joined.n[name];
  }
  return joined;
}

/**
 * `state` with mutation `mutationId`'s increments at feed position `[origin, seq]` and every
 * increment `stable` covers folded (the node's `document.settle`; tests play the node with it).
 */
export function settle(state: State, mutationId: string, origin: string, seq: number, stable: Record<string, number>): State {
  const counters = Object.fromEntries(
    Object.entries(state.n).map(([name, value]) => [name, counter.fold(counter.place(value, mutationId, origin, seq), stable)]),
  );
  return { ...state, n: counters };
}
