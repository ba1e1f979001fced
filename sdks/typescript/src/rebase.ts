/**
 * The local view of a document: the server's state with the pending local mutations joined on
 * top as the same deltas the server will apply, so the device shows exactly the document the
 * server will hold once it has them all, whatever else it received meanwhile.
 */

import { deltaFor, emptyState, join, newestWrite, visible } from "./document.js";
import type { JsonObject, Op, State } from "./document.js";

export interface PendingMutation {
  op: Op;
  data: JsonObject | null;
  hlc: string;
  mutationId: string;
}

export function rebase(server: State | null, pending: Iterable<PendingMutation>): State {
  let state = server ?? emptyState();
  for (const m of pending) state = join(state, deltaFor(m.op, m.data, m.hlc, m.mutationId));
  return state;
}

/** The visible document (`null`: deleted or never written) and its newest write. */
export function viewOf(state: State): { data: JsonObject | null; hlc: string } {
  const hlc = newestWrite(state);
  return { data: visible(state, hlc), hlc };
}
