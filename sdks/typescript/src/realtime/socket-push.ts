/**
 * Pushing over the open realtime WebSocket (docs/protocol.md#push-over-the-realtime-websocket),
 * as the Python SDK does (ADR 0052): a `push` message answered by `pushed`, no HTTP request and
 * response headers per write. `SocketPush.push` expands the compact answer into the HTTP answer's
 * shape, so the sync loop records both the same way. Without a socket, when it closes before the
 * answer, or when no answer comes in time, it rejects with `SocketGone` and the caller pushes over
 * HTTP instead: the mutation ids make the repeat safe whether or not the node applied the first.
 */

import type { VersionVector } from "../cursor.js";
import { errorForProblem } from "../errors.js";
import type { Problem } from "../errors.js";
import type { PushAnswer, PushResult } from "../node-api.js";

/** Pushes larger than this go over HTTP: a node takes client messages of at most 64 KiB. */
export const MAX_MESSAGE_BYTES = 60_000;

/** The push got no answer over the socket (none open, closed, or too slow): push over HTTP. */
export class SocketGone extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = "SocketGone";
  }
}

/** A `pushed` message (one result per mutation, in their order). */
export interface PushedMessage {
  type: "pushed";
  id: number;
  origin?: string;
  /** Applied: `{seq, version, hlc}` and more (docs/protocol.md); else `status` says. */
  results?: (Partial<PushResult> & Record<string, unknown>)[];
  hlc?: string;
  stable?: VersionVector;
  derive?: boolean;
  error?: Partial<Problem>;
}

interface Waiting {
  resolve: (message: PushedMessage) => void;
  reject: (error: Error) => void;
}

/** The WebSocket transport's open socket, lent to the sync loop for pushes. */
export class SocketPush {
  private send: ((text: string) => void) | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;

  /** Whether a subscribed socket is there to push on. */
  get open(): boolean {
    return this.send !== null;
  }

  /** The transport's socket is open and subscribed; `send` writes one text message (throws when it cannot). */
  attach(send: (text: string) => void): void {
    this.send = send;
  }

  /** The socket closed: every push still waiting rejects with `SocketGone`. */
  detach(): void {
    this.send = null;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const push of waiting) push.reject(new SocketGone("the realtime socket closed before the answer"));
  }

  /** A `pushed` message arrived (one for no waiting push is ignored). */
  answered(message: PushedMessage): void {
    const push = this.waiting.get(message.id);
    this.waiting.delete(message.id);
    push?.resolve(message);
  }

  /**
   * Push `mutations` (wire form) and resolve with the answer as `POST /v1/sync/push?include_state=true`
   * gives it, plus `derive`. Rejects with `SocketGone` as the module docstring says, and with the
   * error of the problem when the node refused the push as a whole (as the HTTP call would).
   */
  async push(mutations: readonly Record<string, unknown>[], withinMs: number): Promise<PushAnswer> {
    const send = this.send;
    if (send === null) throw new SocketGone("no realtime socket");
    const id = this.nextId++;
    const text = JSON.stringify({ type: "push", id, mutations });
    if (text.length > MAX_MESSAGE_BYTES) throw new SocketGone("the push is too large for one message");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const message = await new Promise<PushedMessage>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      timer = setTimeout(() => reject(new SocketGone(`no answer over the socket within ${withinMs} ms`)), withinMs);
      try {
        send(text);
      } catch (error) {
        reject(new SocketGone(`the realtime socket failed: ${String(error)}`));
      }
    }).finally(() => {
      clearTimeout(timer);
      this.waiting.delete(id);
    });
    if (message.error !== undefined) throw errorForProblem(message.error.status ?? 400, message.error);
    return expand(message, mutations);
  }
}

/**
 * A `pushed` message in the HTTP answer's shape: each result with its `mutation_id`, `status`
 * and `origin`. `derive` stays: an applied result without `state` then has the state the device
 * computes from its own mutation.
 */
export function expand(message: PushedMessage, mutations: readonly Record<string, unknown>[]): PushAnswer {
  const compact = message.results ?? [];
  if (compact.length !== mutations.length) throw new Error("a pushed answer needs one result per mutation");
  const results = compact.map((result, i) => ({
    status: "applied" as const,
    ...(message.origin === undefined ? {} : { origin: message.origin }),
    ...result,
    mutation_id: String((mutations[i] as Record<string, unknown>)["mutation_id"]),
  }));
  return {
    results,
    ...(message.hlc === undefined ? {} : { hlc: message.hlc }),
    ...(message.stable === undefined ? {} : { stable: message.stable }),
    ...(message.derive ? { derive: true } : {}),
  };
}
