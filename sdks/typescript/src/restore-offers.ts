/**
 * Devices help a restore (docs/adr/0029-backups-and-point-in-time-restore.md; the Python SDK's
 * `restore_offers.py`, same rule). A node restored to an earlier point has lost the changes after
 * it; a device that synced them still holds the documents' states. When the node answers
 * `410 cursor_unknown` the device resyncs, and for every document whose held state has something
 * the node's lacks (their join differs from the node's), it queues a write of it: a `set` of the
 * data it held, stamped with the newest write it held, or a `delete` of a document it held
 * deleted. The node merges it like any write (a newer write made there since keeps its fields) and
 * checks it with the same access rules as any write of the device's user. The mutation id is
 * derived from the state offered, so devices offering the same state bring it back once.
 *
 * Limits, as in Python: the offer restamps every field with the document's newest write, and a
 * document holding counters is not offered (a `set` would turn a counter into a plain value).
 * The ids hash with SHA-256 (Web Crypto), not BLAKE2b: a Python and a TypeScript device offering
 * the same state both apply it, to the same effect (a join is idempotent).
 */

import { canonicalJson } from "./canonical.js";
import { join, newestWrite, visible } from "./document.js";
import type { JsonObject, State } from "./document.js";

export interface Offer {
  readonly mutationId: string;
  readonly op: "set" | "delete";
  readonly data: JsonObject | null;
  readonly hlc: string;
}

/** Whether the node's state (`null`: none) lacks something of `held`. */
export function lacks(node: State | null, held: State): boolean {
  return node === null || canonicalJson(join(node, held)) !== canonicalJson(node);
}

async function sha256(text: string, chars: number): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, chars);
}

/** The write bringing back what the node lacks of `held`; `null` if nothing lacks or it cannot be offered (counters). */
export async function offerFor(collection: string, id: string, held: State, node: State | null): Promise<Offer | null> {
  if (Object.keys(held.n).length > 0 || !lacks(node, held)) return null;
  const data = visible(held);
  if (data === null && node === null) return null; // the node never had it or purged its tombstone
  const mutationId = `restore.${await sha256(`${collection}/${id}`, 12)}.${await sha256(canonicalJson(held), 20)}`;
  return { mutationId, op: data === null ? "delete" : "set", data, hlc: newestWrite(held) };
}
