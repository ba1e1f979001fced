// Realtime transports and their ladder, with fakes behind the seams (no network).
import { describe, expect, it } from "vitest";

import { EndpointUnavailable } from "../src/errors.js";
import { TransportLadder } from "../src/realtime/ladder.js";
import { TransportRefused } from "../src/realtime/transport.js";
import type { StreamContext, Transport, TransportName, WebSocketConstructor } from "../src/realtime/transport.js";
import { WebSocketTransport } from "../src/realtime/websocket.js";
import { fakeSocket } from "./fake-socket.js";

function context(signal: AbortSignal, notified: string[] = []): StreamContext {
  return {
    baseUrl: "http://node",
    fetch: async () => new Response("{}"),
    headers: undefined,
    signal,
    idleTimeoutMs: 60_000,
    longPollWaitMs: 1_000,
    requestTimeoutMs: 1_000,
    collections: null,
    cursor: () => "",
    notify: async (cursor) => {
      notified.push(cursor);
    },
  };
}

/** A WebSocket that opens at once and plays `messages` to the client after its first send. */
function playing(messages: string[], sent: string[]): WebSocketConstructor {
  return fakeSocket((text, node) => {
    sent.push(text);
    if (sent.length === 1) for (const data of messages) node.receive(data);
  });
}

describe("WebSocketTransport", () => {
  it("subscribes, answers pings, notifies new changes and ends on reconnect", async () => {
    const sent: string[] = [];
    const notified: string[] = [];
    const messages = [
      JSON.stringify({ type: "ping" }),
      JSON.stringify({ type: "changes", changes: [{}], cursor: "c1.eyJyIjoxfQ" }),
      JSON.stringify({ type: "reconnect", reason: "draining" }),
    ];
    const transport = new WebSocketTransport(playing(messages, sent));
    await transport.listen(context(new AbortController().signal, notified));
    expect(sent.map((text) => JSON.parse(text).type)).toEqual(["subscribe", "pong"]);
    expect(notified).toEqual(["c1.eyJyIjoxfQ"]);
  });

  it("ends with a transient error on a malformed message instead of throwing in the handler", async () => {
    const transport = new WebSocketTransport(playing(["not json"], []));
    await expect(transport.listen(context(new AbortController().signal))).rejects.toBeInstanceOf(EndpointUnavailable);
  });
});

/** A transport that refuses, or that listens until aborted. */
function scripted(name: TransportName, refuses: boolean, runs: TransportName[]): Transport {
  return {
    name,
    listen: (ctx) =>
      new Promise((_, reject) => {
        runs.push(name);
        if (refuses) reject(new TransportRefused(`${name} refused`));
        else if (ctx.signal.aborted) reject(ctx.signal.reason);
        else ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
      }),
  };
}

describe("TransportLadder", () => {
  it("falls back past refused transports, then climbs back one rung after climbBackAfterMs", async () => {
    const runs: TransportName[] = [];
    const stop = new AbortController();
    const ladder = new TransportLadder(
      [scripted("websocket", true, runs), scripted("sse", true, runs), scripted("long_poll", false, runs)],
      20,
      () => {
        if (runs.length >= 4) stop.abort();
      },
      () => undefined,
    );
    await ladder.run(context(stop.signal));
    expect(runs.slice(0, 4)).toEqual(["websocket", "sse", "long_poll", "sse"]);
  });
});
