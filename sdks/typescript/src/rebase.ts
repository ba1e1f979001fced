/**
 * The local view of a document: the server's state with the pending local mutations applied on
 * top as the server applies them (`apply`, with each mutation's own stamp and id), so the device
 * shows exactly the document the server will hold once it has them all, whatever else it
 * received meanwhile. A mutation the server already has changes nothing: by its id while the
 * server keeps its increment apart, and by its acknowledged position once the server has folded
 * it into a base.
 */

import { apply, emptyState, newestWrite, visible } from "./document.js";
import type { JsonObject, Op, State } from "./document.js";
import type { Position } from "./counter.js";

export interface PendingMutation {
  op: Op;
  data: JsonObject | null;
  hlc: string;
  mutationId: string;
  /** The feed position a push acknowledged it at; absent until then. */
  position?: Position | null;
}

export function rebase(server: State | null, pending: Iterable<PendingMutation>): State {
  let state = server ?? emptyState();
  for (const m of pending) state = apply(state, m.op, m.data, m.hlc, m.mutationId, m.position ?? null);
  return state;
}

/** The visible document (`null`: deleted or never written) and its newest write. */
export function viewOf(state: State): { data: JsonObject | null; hlc: string } {
  const hlc = newestWrite(state);
  return { data: visible(state, hlc), hlc };
}
