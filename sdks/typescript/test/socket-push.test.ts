// Pushing over the open realtime WebSocket (src/realtime/socket-push.ts): answers matched by id
// and expanded into the HTTP answer's shape; no socket, a close before the answer, no answer in
// time or a push too large for one message reject with `SocketGone`, and the sync loop then
// pushes the same batch over HTTP at once.
import { afterEach, describe, expect, it, vi } from "vitest";

import { Client } from "../src/client.js";
import { BreakwaterError } from "../src/errors.js";
import { MAX_MESSAGE_BYTES, SocketGone, SocketPush } from "../src/realtime/socket-push.js";
import type { PushedMessage } from "../src/realtime/socket-push.js";
import type { WebSocketConstructor } from "../src/realtime/transport.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { FakeDeployment } from "./fake-regions.js";
import { fakeSocket } from "./fake-socket.js";

const mutations = [
  { mutation_id: "d.1", collection: "todos", id: "t1", op: "set", data: { title: "milk" }, hlc: "h1" },
  { mutation_id: "d.2", collection: "todos", id: "t1", op: "patch", data: { done: true }, hlc: "h2" },
];

/** A socket lent to `push`, and the messages sent on it. */
function lent(): { socket: SocketPush; sent: { id: number; mutations: unknown[] }[] } {
  const socket = new SocketPush();
  const sent: { id: number; mutations: unknown[] }[] = [];
  socket.attach((text) => sent.push(JSON.parse(text) as { id: number; mutations: unknown[] }));
  return { socket, sent };
}

describe("SocketPush", () => {
  it("answers a push with its pushed message in the HTTP answer's shape", async () => {
    const { socket, sent } = lent();
    const pushing = socket.push(mutations, 10_000);
    expect(sent).toEqual([{ type: "push", id: 1, mutations }]);
    socket.answered({ type: "pushed", id: 99, origin: "o", results: [], hlc: "x" }); // no push waits for it
    socket.answered({
      type: "pushed",
      id: 1,
      origin: "o",
      results: [{ seq: 7, hlc: "h1", state: { f: {}, s: "h1", x: "", n: {} } }, { status: "duplicate", seq: 3, origin: "p" }],
      hlc: "node",
      stable: { o: 7 },
      derive: true,
    });
    expect(await pushing).toEqual({
      results: [
        { mutation_id: "d.1", status: "applied", origin: "o", seq: 7, hlc: "h1", state: { f: {}, s: "h1", x: "", n: {} } },
        { mutation_id: "d.2", status: "duplicate", origin: "p", seq: 3 },
      ],
      hlc: "node",
      stable: { o: 7 },
      derive: true,
    });
  });

  it("gives the error of a push refused as a whole", async () => {
    const { socket } = lent();
    const pushing = socket.push(mutations, 10_000);
    socket.answered({ type: "pushed", id: 1, error: { type: "clock_skew", status: 400, title: "skew" } } as PushedMessage);
    await expect(pushing).rejects.toSatisfy((error) => error instanceof BreakwaterError && error.type === "clock_skew");
  });

  it("refuses an answer with another number of results than mutations", async () => {
    const { socket } = lent();
    const pushing = socket.push(mutations, 10_000);
    socket.answered({ type: "pushed", id: 1, origin: "o", results: [{ seq: 1 }] });
    await expect(pushing).rejects.toThrow("one result per mutation");
  });

  it.each<[string, (socket: SocketPush) => Promise<unknown>]>([
    ["no socket is lent", (socket) => (socket.detach(), socket.push(mutations, 10_000))],
    ["the socket closes before the answer", (socket) => Promise.all([socket.push(mutations, 10_000), socket.detach()])],
    ["no answer comes in time", (socket) => socket.push(mutations, 1)],
    ["the push is too large for one message", (socket) => socket.push([{ ...mutations[0], data: { text: "x".repeat(MAX_MESSAGE_BYTES) } }], 10_000)],
    [
      "the send fails",
      (socket) => {
        socket.attach(() => {
          throw new Error("closing");
        });
        return socket.push(mutations, 10_000);
      },
    ],
  ])("rejects with SocketGone when %s", async (_, push) => {
    const { socket } = lent();
    await expect(push(socket)).rejects.toBeInstanceOf(SocketGone);
  });

  it("numbers pushes anew, so a late answer to a push given up on finds no waiter", async () => {
    const { socket, sent } = lent();
    await expect(socket.push(mutations, 1)).rejects.toBeInstanceOf(SocketGone);
    const second = socket.push(mutations, 10_000);
    socket.answered({ type: "pushed", id: 1, origin: "o", results: [{ seq: 1 }, { seq: 2 }] }); // the first's, late
    socket.answered({ type: "pushed", id: 2, origin: "o", results: [{ seq: 5 }, { seq: 6 }] });
    expect((await second).results.map((r) => r.seq)).toEqual([5, 6]);
    expect(sent.map((m) => m.id)).toEqual([1, 2]);
  });
});

/** A realtime socket that hears every message sent on it, and closes when a push arrives, unanswered. */
function closingOnPush(sent: string[]): WebSocketConstructor {
  return fakeSocket((text, node) => {
    sent.push((JSON.parse(text) as { type: string }).type);
    if (sent.at(-1) === "push") node.close();
  });
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("the sync loop with a realtime WebSocket", () => {
  it("pushes on the socket, and over HTTP at once when the socket closes before the answer", async () => {
    const deployment = new FakeDeployment({ a: 0 });
    deployment.stable = { a: 1_000 };
    const region = deployment.region("a");
    const sent: string[] = [];
    const client = await Client.open({
      endpoints: [region.url],
      storage: new MemoryStorage(),
      fetch: deployment.fetch,
      WebSocket: closingOnPush(sent),
      transports: ["websocket"],
      pollIntervalMs: 600_000,
    });
    cleanups.push(() => client.close());
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: "online", transport: "websocket" }));
    await vi.waitFor(() => expect(sent).toEqual(["subscribe"]));
    await client.collection("todos").set("t1", { title: "milk" });
    await vi.waitFor(() => expect(client.outbox()).toEqual([]));
    expect(sent).toContain("push");
    expect(region.calls.filter((c) => c === "POST /v1/sync/push")).toHaveLength(1);
    expect(region.feed).toHaveLength(1);
    expect(await client.collection("todos").get("t1")).toMatchObject({ data: { title: "milk" }, pending: false });
  });
});
