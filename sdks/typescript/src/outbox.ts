/** Outbox entries: local mutations kept until acknowledged *and* stable (RPO 0). */

import type { JsonObject, Op } from "./document.js";
import type { Problem } from "./errors.js";

export interface OutboxEntry {
  readonly position: number;
  readonly mutationId: string;
  readonly collection: string;
  readonly id: string;
  readonly op: Op;
  readonly data: JsonObject | null;
  readonly hlc: string;
  /** Set once a push acknowledged it: the change's feed position. */
  readonly origin: string | null;
  readonly seq: number | null;
}

/** A mutation the server refused: out of the outbox, its effect rolled back. */
export interface Rejection {
  readonly mutationId: string;
  readonly collection: string;
  readonly id: string;
  readonly op: Op;
  readonly data: JsonObject | null;
  readonly problem: Problem;
}

/** The mutation as `POST /v1/sync/push` takes it. */
export function toWire(entry: OutboxEntry): Record<string, unknown> {
  const wire: Record<string, unknown> = {
    mutation_id: entry.mutationId,
    collection: entry.collection,
    id: entry.id,
    op: entry.op,
    hlc: entry.hlc,
  };
  if (entry.op !== "delete") wire["data"] = entry.data;
  return wire;
}
