/**
 * Realtime over a WebSocket (`GET /v1/realtime`): subscribe from the device's cursor, answer
 * pings, wake the sync loop on new changes, and lend the open socket for pushes
 * (`context.socket`: `pushed` answers go there). A browser's WebSocket hides why a connection failed
 * before it opened, so the endpoint's `/healthz` tells a refused transport (the node answers)
 * from an unreachable node.
 */

import { EndpointUnavailable, errorForProblem } from "../errors.js";
import type { Problem } from "../errors.js";
import type { PushedMessage } from "./socket-push.js";
import { bringsChanges, TransportRefused } from "./transport.js";
import type { StreamContext, Transport, WebSocketConstructor } from "./transport.js";
import { traceparentFrom } from "../trace-context.js";
import type { TraceparentSource } from "../trace-context.js";

interface Message {
  type?: string;
  changes?: unknown[];
  cursor?: string;
  error?: Partial<Problem>;
}

export class WebSocketTransport implements Transport {
  readonly name = "websocket";

  constructor(
    private readonly WebSocketImpl: WebSocketConstructor,
    private readonly traceparent?: TraceparentSource,
  ) {}

  async listen(context: StreamContext): Promise<void> {
    // A browser WebSocket cannot send headers: a bearer token goes as `access_token`, the
    // trace context as `traceparent`.
    const authorization = (context.headers ? await context.headers() : {})["Authorization"] ?? "";
    const params = new URLSearchParams({ traceparent: traceparentFrom(this.traceparent) });
    if (authorization.startsWith("Bearer ")) params.set("access_token", authorization.slice(7));
    const query = `?${params}`;
    const connection = await this.follow(context, query);
    if (context.signal.aborted) throw context.signal.reason;
    if (connection.opened) {
      if (connection.error !== undefined) throw connection.error;
      return; // the node asked for a reconnect
    }
    // It never opened: refused by the node (or a proxy), or the node is down?
    try {
      const health = await context.fetch(`${context.baseUrl}/healthz`, { signal: AbortSignal.any([context.signal, AbortSignal.timeout(context.requestTimeoutMs)]) });
      if (health.ok) throw new TransportRefused("WebSocket refused by a node that answers HTTP");
    } catch (error) {
      if (error instanceof TransportRefused) throw error;
      if (context.signal.aborted) throw context.signal.reason;
    }
    throw new EndpointUnavailable("WebSocket: the node does not answer");
  }

  /** Run one connection: whether it opened, and the error it ended with (none: the node asked to reconnect). */
  private follow(context: StreamContext, query: string): Promise<{ opened: boolean; error?: unknown }> {
    const url = `${context.baseUrl.replace(/^http/, "ws")}/v1/realtime${query}`;
    return new Promise((resolve) => {
      if (context.signal.aborted) return resolve({ opened: false });
      const ws = new this.WebSocketImpl(url);
      let opened = false;
      let idle = setTimeout(() => finish(new EndpointUnavailable(`realtime: nothing heard for ${context.idleTimeoutMs} ms`)), context.idleTimeoutMs);
      let queue = Promise.resolve();
      const finish = (error: unknown): void => {
        clearTimeout(idle);
        context.socket?.detach();
        context.signal.removeEventListener("abort", aborted);
        ws.onopen = ws.onmessage = ws.onclose = null;
        ws.onerror = () => undefined; // closing before the handshake ends reports an error (Node's `ws` throws it when nobody listens)
        if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) ws.close();
        resolve(error === undefined ? { opened } : { opened, error });
      };
      const aborted = (): void => finish(context.signal.reason);
      context.signal.addEventListener("abort", aborted);
      ws.onopen = () => {
        opened = true;
        ws.send(JSON.stringify({ type: "subscribe", collections: context.collections, cursor: context.cursor() }));
        context.socket?.attach((text) => ws.send(text));
      };
      const handle = (message: Message): void => {
        if (message.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
        else if (message.type === "changes" && bringsChanges(message, context.cursor())) {
          const cursor = message.cursor as string;
          queue = queue.then(() => context.notify(cursor));
        } else if (message.type === "error") {
          const problem = message.error ?? {};
          finish(errorForProblem(problem.status ?? 400, problem)); // a 410: CursorExpired
        } else if (message.type === "pushed") context.socket?.answered(message as PushedMessage);
        else if (message.type === "reconnect") finish(undefined);
      };
      ws.onmessage = (event: MessageEvent) => {
        clearTimeout(idle);
        idle = setTimeout(() => finish(new EndpointUnavailable(`realtime: nothing heard for ${context.idleTimeoutMs} ms`)), context.idleTimeoutMs);
        try {
          handle(JSON.parse(String(event.data)) as Message);
        } catch (error) {
          finish(new EndpointUnavailable(`WebSocket: a malformed message: ${String(error)}`)); // never throw in a handler
        }
      };
      ws.onclose = () => finish(opened ? new EndpointUnavailable("WebSocket closed") : undefined);
      ws.onerror = () => undefined; // a close always follows
    });
  }
}
