/**
 * Document state as a state-based CRDT and its join, computed exactly as the Python core does
 * (`breakwater/core/document.py`; the golden vectors in sdks/vectors prove it):
 *
 * `f` field registers `{name: [hlc, value]}`; `[hlc]` alone marks the field removed at `hlc`
 * `s` HLC of the newest `set`, `x` HLC of the newest `delete`
 * `n` counter increments `{name: {mutation_id: [hlc, amount]}}`
 *
 * A mutation becomes a small state (`deltaFor`) and applying it is `join`: commutative,
 * associative and idempotent, so a device and a node holding the same mutations hold the same state.
 */

import { canonicalJson, compareCodePoints } from "./canonical.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };
export type Register = [string] | [string, Json];
export type Increment = [string, number];

export interface State {
  f: Record<string, Register>;
  s: string;
  x: string;
  n: Record<string, Record<string, Increment>>;
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
  const counters: Record<string, Record<string, Increment>> = {};
  for (const [name, increments] of Object.entries(left.n)) counters[name] = { ...increments };
  for (const [name, increments] of Object.entries(right.n)) {
    const merged = (counters[name] ??= {});
    for (const [mutationId, increment] of Object.entries(increments)) {
      const current = merged[mutationId];
      if (current === undefined || compareCodePoints(canonicalJson(increment), canonicalJson(current)) > 0) {
        merged[mutationId] = increment;
      }
    }
  }
  return normalize({ f: fields, s: max(left.s, right.s), x: max(left.x, right.x), n: counters });
}

/** Drop registers and increments that no future join can make visible again. */
export function normalize(state: State): State {
  const reset = max(state.s, state.x);
  const fields: Record<string, Register> = {};
  for (const [name, register] of Object.entries(state.f)) {
    // A set's own fields carry the set's HLC, so they survive it; a delete kills its equals too.
    if (register[0] >= state.s && register[0] > state.x) fields[name] = register;
  }
  const counters: Record<string, Record<string, Increment>> = {};
  for (const [name, increments] of Object.entries(state.n)) {
    const field = fields[name];
    const floor = field === undefined ? reset : max(reset, field[0]);
    const live = Object.entries(increments).filter(([, increment]) => increment[0] > floor);
    if (live.length > 0) counters[name] = Object.fromEntries(live);
  }
  return { f: fields, s: state.s, x: state.x, n: counters };
}

/** The HLC of the newest write still visible (or of the newest delete). */
export function newestWrite(state: State): string {
  let newest = max(state.s, state.x);
  for (const register of Object.values(state.f)) newest = max(newest, register[0]);
  for (const increments of Object.values(state.n)) {
    for (const increment of Object.values(increments)) newest = max(newest, increment[0]);
  }
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
  for (const [name, increments] of Object.entries(state.n)) {
    const register = state.f[name];
    const base = register?.length === 2 && typeof register[1] === "number" ? register[1] : 0;
    // Sum in a fixed order (stamp, then mutation id) so that float rounding is the same everywhere.
    const ordered = Object.entries(increments).sort(
      ([idA, [atA]], [idB, [atB]]) => (atA === atB ? compareCodePoints(idA, idB) : atA < atB ? -1 : 1),
    );
    let total = base;
    for (const [, [, amount]] of ordered) total += amount;
    data[name] = total;
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
      delta.n = Object.fromEntries(entries.map(([name, amount]) => [name, { [mutationId]: [hlc, amount as number] }]));
      break;
  }
  return delta;
}
