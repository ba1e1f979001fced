/**
 * The realtime seam: a transport follows one endpoint's change stream and only tells the sync
 * loop that the feed moved past the device's cursor; the loop then pulls the changes with their
 * replicated states (stream messages carry documents but not states, and rebasing pending
 * writes needs states). So every transport delivers every change: the pull is gap-free.
 *
 * Contract of `listen`:
 * - resolves when the stream ended normally (the node asked the client to reconnect);
 * - rejects with `TransportRefused` when the endpoint works but refuses this transport (the
 *   ladder falls back to the next one), `EndpointUnavailable` when it cannot be reached or is
 *   overloaded or silent, `CursorExpired` when the cursor is behind the retention horizon;
 * - rejects with `context.signal`'s reason once it aborts (the stream is closed first).
 */

import { covers, decodeCursor } from "../cursor.js";
import type { Fetch, HeadersProvider } from "../node-api.js";
import type { SocketPush } from "./socket-push.js";

export type TransportName = "websocket" | "sse" | "long_poll";

/** A browser-style WebSocket constructor (`globalThis.WebSocket`, or `ws` under Node 20). */
export type WebSocketConstructor = new (url: string) => WebSocket;

export interface StreamContext {
  readonly baseUrl: string;
  readonly fetch: Fetch;
  readonly headers: HeadersProvider | undefined;
  readonly signal: AbortSignal;
  /** Nothing heard for this long (heartbeats included): the stream is dead. */
  readonly idleTimeoutMs: number;
  readonly longPollWaitMs: number;
  readonly requestTimeoutMs: number;
  /** The device's scope: the collections it follows (`null`: all). */
  readonly collections: readonly string[] | null;
  /** The device's cursor now. */
  cursor(): string;
  /** The feed moved to `cursor`: resolves once the device has pulled up to it (or gave up). */
  notify(cursor: string): Promise<void>;
  /** Where the WebSocket transport lends its open socket for pushes (src/realtime/socket-push.ts). */
  readonly socket?: SocketPush;
}

export interface Transport {
  readonly name: TransportName;
  listen(context: StreamContext): Promise<void>;
}

/** The endpoint answers, but not on this transport (disabled, or stripped by a proxy). */
export class TransportRefused extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "TransportRefused";
  }
}

/** Whether a stream message's cursor covers changes the device has not pulled yet. */
export function isAhead(messageCursor: string, localCursor: string): boolean {
  const local = decodeCursor(localCursor);
  return Object.entries(decodeCursor(messageCursor)).some(([origin, seq]) => !covers(local, origin, seq));
}

/** A `changes` message with changes the device lacks (an empty one only hands over a cursor). */
export function bringsChanges(message: { changes?: unknown[]; cursor?: string }, localCursor: string): boolean {
  return Boolean(message.changes?.length) && typeof message.cursor === "string" && isAhead(message.cursor, localCursor);
}
