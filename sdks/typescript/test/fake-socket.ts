// A browser-style WebSocket for transport tests without a network: it opens at once and hands
// each message the client sends to the test, which may answer it or close the socket.
import type { WebSocketConstructor } from "../src/realtime/transport.js";

/** What a test does to the socket: a message from the node, or the node closing it. */
export interface FakeNode {
  receive(data: string): void;
  close(): void;
}

/** A WebSocket class whose instances call `onSend` with each message the client sends (asynchronously answered, as a node would). */
export function fakeSocket(onSend: (text: string, node: FakeNode) => void): WebSocketConstructor {
  class FakeSocket {
    readonly CONNECTING = 0;
    readonly OPEN = 1;
    readyState = 0;
    onopen: (() => void) | null = null;
    onmessage: ((event: { data: string }) => void) | null = null;
    onclose: (() => void) | null = null;
    onerror: (() => void) | null = null;
    private readonly node: FakeNode = {
      receive: (data) => setTimeout(() => this.onmessage?.({ data })),
      close: () => setTimeout(() => this.onclose?.()),
    };
    constructor() {
      setTimeout(() => {
        this.readyState = 1;
        this.onopen?.();
      });
    }
    send(text: string): void {
      onSend(text, this.node);
    }
    close(): void {
      this.readyState = 3;
    }
  }
  return FakeSocket as unknown as WebSocketConstructor;
}
