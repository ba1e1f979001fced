// The SDK against a real `breakwater serve` (see test/node.ts): offline writes, reconnect,
// exactly-once under retries, others' changes arriving live over each transport, resync on
// 410, rejections, scoped sync, failover between two nodes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";
import { WebSocket as WsWebSocket } from "ws";

import { Client } from "../src/client.js";
import type { ClientOptions } from "../src/client.js";
import type { Document } from "../src/local-store.js";
import type { NetworkState } from "../src/network.js";
import type { Fetch } from "../src/node-api.js";
import type { Rejection } from "../src/outbox.js";
import type { TransportName, WebSocketConstructor } from "../src/realtime/transport.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { freePort, Node } from "./node.js";
import type { NodeOptions } from "./node.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startNode(port?: number, options: NodeOptions = {}): Promise<Node> {
  const node = new Node(port ?? (await freePort()), options);
  cleanups.push(() => node.remove());
  await node.start();
  return node;
}

async function openClient(options: Partial<ClientOptions> & Pick<ClientOptions, "endpoints">): Promise<Client> {
  const client = await Client.open({
    storage: new MemoryStorage(),
    longPollWaitMs: 2_000,
    requestTimeoutMs: 5_000,
    backoffBaseMs: 20,
    backoffCapMs: 200,
    breakerResetMs: 200,
    pollIntervalMs: 120_000, // longer than any test: changes that arrive came by realtime
    ...options,
  });
  cleanups.push(() => client.close());
  return client;
}

/** A platform network the test switches, as a browser's `online` and `offline` events would. */
class SwitchedNetwork implements NetworkState {
  online = true;
  private readonly listeners = new Set<(online: boolean) => void>();

  subscribe(listener: (online: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(online: boolean): void {
    this.online = online;
    for (const listener of this.listeners) listener(online);
  }
}

const settled = (client: Client) => vi.waitFor(() => expect(client.outbox()).toEqual([]), { timeout: 15_000, interval: 50 });

describe("against breakwater serve", () => {
  it("keeps writes made offline and delivers them once the node is up", async () => {
    const port = await freePort();
    const client = await openClient({ endpoints: [`http://127.0.0.1:${port}`] });
    const todos = client.collection("todos");
    await todos.set("t1", { title: "milk", done: false });
    await todos.patch("t1", { done: true });
    await client.collection("stats").increment("s", { n: 2 });
    expect(await todos.get("t1")).toMatchObject({ data: { title: "milk", done: true }, pending: true });
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: "offline", pending: 3 }), { timeout: 5_000 });

    const node = await startNode(port);
    client.syncNow();
    await settled(client);
    expect((await node.document("todos", "t1"))?.data).toEqual({ title: "milk", done: true });
    expect((await node.document("stats", "s"))?.data).toEqual({ n: 2 });
    expect(await todos.get("t1")).toMatchObject({ data: { title: "milk", done: true }, pending: false });
  });

  it("sends nothing and keeps no realtime connection while the platform says offline, and syncs as it comes back", async () => {
    const node = await startNode();
    const sent: string[] = [];
    const recording: Fetch = (input, init) => {
      sent.push(new URL(String(input)).pathname);
      return fetch(input, init);
    };
    const sockets = new Set<WsWebSocket>();
    class TrackedSocket extends WsWebSocket {
      constructor(url: string) {
        super(url);
        sockets.add(this);
        this.on("close", () => sockets.delete(this));
      }
    }
    const network = new SwitchedNetwork();
    // A minute of backoff: only the platform's `online` can start the round that delivers the write.
    const client = await openClient({ endpoints: [node.url], fetch: recording, WebSocket: TrackedSocket as unknown as WebSocketConstructor, network, backoffBaseMs: 60_000, backoffCapMs: 60_000 });
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: "online", transport: "websocket" }), { timeout: 10_000 });
    expect(sockets.size).toBe(1);

    network.set(false);
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: "offline", transport: null }));
    await vi.waitFor(() => expect(sockets.size).toBe(0));
    sent.length = 0;
    await client.collection("todos").set("t1", { title: "milk" });
    await new Promise((resolve) => setTimeout(resolve, 300)); // time enough for a push to leave
    expect(sent).toEqual([]);
    expect(await node.document("todos", "t1")).toBeNull();

    network.set(true);
    await settled(client);
    expect((await node.document("todos", "t1"))?.data).toEqual({ title: "milk" });
    await vi.waitFor(() => expect(client.status.transport).toBe("websocket"), { timeout: 10_000 });
    expect(sockets.size).toBe(1);
  });

  it.each<[TransportName, number]>([
    ["sse", 5], // pushes over HTTP
    ["websocket", 0], // pushes on the open socket
  ])("settles each online write with one push and no pull (realtime over %s)", async (transport, httpPushes) => {
    const node = await startNode();
    const paths: string[] = [];
    const counting: Fetch = (input, init) => {
      paths.push(new URL(String(input)).pathname);
      return fetch(input, init);
    };
    let socketPushes = 0;
    class CountingWebSocket extends WsWebSocket {
      override send(data: string): void {
        if ((JSON.parse(data) as { type?: string }).type === "push") socketPushes += 1;
        super.send(data);
      }
    }
    const WebSocket = CountingWebSocket as unknown as WebSocketConstructor;
    const client = await openClient({ endpoints: [node.url], fetch: counting, WebSocket, transports: [transport] });
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: "online", transport }), { timeout: 10_000 });
    const from = paths.length;
    const todos = client.collection("todos");
    for (let i = 0; i < 5; i++) {
      await todos.set(`t${i}`, { n: i });
      await settled(client);
    }
    // Another writer's change follows the echoes on the stream: once the device has it, it has heard every echo.
    await node.put("notes", "n1", { text: "from elsewhere" });
    await vi.waitFor(async () => expect(await client.collection("notes").get("n1")).not.toBeNull(), { timeout: 10_000 });
    const sync = paths.slice(from).filter((path) => path.startsWith("/v1/sync/"));
    expect(sync).toEqual([...Array<string>(httpPushes).fill("/v1/sync/push"), "/v1/sync/pull"]);
    expect(socketPushes).toBe(5 - httpPushes);
    expect((await todos.query()).map((d) => [d.data["n"], d.pending])).toEqual([0, 1, 2, 3, 4].map((n) => [n, false]));
  });

  it("settles writes pushed on the socket to the node's documents, derived or sent", async () => {
    const node = await startNode();
    const paths: string[] = [];
    const counting: Fetch = (input, init) => {
      paths.push(new URL(String(input)).pathname);
      return fetch(input, init);
    };
    const client = await openClient({ endpoints: [node.url], fetch: counting, WebSocket: WsWebSocket as unknown as WebSocketConstructor, transports: ["websocket"] });
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: "online", transport: "websocket" }), { timeout: 10_000 });
    const todos = client.collection("todos");
    const stats = client.collection("stats");
    await todos.set("t1", { title: "milk", done: false, tags: ["a"] });
    await todos.patch("t1", { done: true, tags: null }); // its state derived from the device's own delta
    await todos.set("t2", { title: "eggs" });
    await todos.delete("t2");
    await stats.increment("s", { n: 2 }); // a counter's state is always sent
    await settled(client);
    expect(await todos.get("t1")).toMatchObject({ data: { title: "milk", done: true }, pending: false });
    expect((await node.document("todos", "t1"))?.data).toEqual({ title: "milk", done: true });
    expect(await todos.get("t2")).toBeNull();
    expect(await node.document("todos", "t2")).toBeNull();
    await stats.increment("s", { n: 3 });
    await settled(client);
    expect((await stats.get("s"))?.data).toEqual({ n: 5 });
    expect((await node.document("stats", "s"))?.data).toEqual({ n: 5 });
    expect(paths.filter((path) => path === "/v1/sync/push")).toEqual([]); // all on the socket
  });

  it("applies every mutation once when each push reaches the node twice", async () => {
    const node = await startNode();
    const doubled: Fetch = async (input, init) => {
      if (new URL(String(input)).pathname === "/v1/sync/push") await fetch(input, init); // a retry after a lost answer
      return fetch(input, init);
    };
    const client = await openClient({ endpoints: [node.url], fetch: doubled });
    const duplicates: string[] = [];
    client.on("acknowledged", ({ duplicates: ids }) => duplicates.push(...ids));
    const counters = client.collection("counters");
    for (let i = 0; i < 3; i++) await counters.increment("c", { n: 1 });
    await settled(client);
    expect((await node.document("counters", "c"))?.data).toEqual({ n: 3 });
    expect((await counters.get("c"))?.data).toEqual({ n: 3 });
    expect(duplicates.length).toBeGreaterThan(0);
  });

  it.each<[string, Record<string, string>, TransportName]>([
    ["a WebSocket", {}, "websocket"],
    ["SSE when WebSockets are refused", { BREAKWATER_REALTIME_TRANSPORTS: "sse" }, "sse"],
    ["long-poll when both streams are refused", { BREAKWATER_REALTIME_TRANSPORTS: "," }, "long_poll"], // ",": none (an empty variable is unset),
  ])("shows others' changes live over %s", async (_, env, transport) => {
    const node = await startNode(undefined, { env });
    const client = await openClient({ endpoints: [node.url], WebSocket: WsWebSocket as unknown as WebSocketConstructor });
    const seen: Document[][] = [];
    client.collection("notes").watch({ orderBy: "title" }, (docs) => seen.push(docs));
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: "online", transport }), { timeout: 10_000 });
    await node.put("notes", "n1", { title: "from elsewhere" });
    await vi.waitFor(() => expect(seen.at(-1)?.map((d) => d.data["title"])).toEqual(["from elsewhere"]), { timeout: 10_000 });
    await node.put("notes", "n2", { title: "and again" });
    await vi.waitFor(() => expect(seen.at(-1)?.length).toBe(2), { timeout: 10_000 });
    expect(client.status.transport).toBe(transport);
  });

  it("resyncs from scratch on a 410 for its cursor, keeping the outbox", async () => {
    const node = await startNode();
    await node.put("todos", "old", { title: "before" });
    // armed: the next pull past the start gets 410; until the resync's pull, pushes get 503,
    // so the new write is still in the outbox while the device resyncs.
    let phase: "idle" | "armed" | "expired" | "done" = "idle";
    const cursorsAfter410: string[] = [];
    const expiring: Fetch = async (input, init) => {
      const url = new URL(String(input));
      if (url.pathname === "/v1/sync/push" && (phase === "armed" || phase === "expired")) {
        return new Response(JSON.stringify({ type: "store_unavailable", status: 503 }), { status: 503 });
      }
      if (url.pathname === "/v1/sync/pull" && !url.searchParams.has("wait")) {
        if (phase === "armed") {
          phase = "expired";
          return new Response(JSON.stringify({ type: "cursor_expired", status: 410 }), { status: 410 });
        }
        if (phase === "expired") {
          cursorsAfter410.push(url.searchParams.get("cursor") ?? "");
          phase = "done";
        }
      }
      return fetch(input, init);
    };
    const client = await openClient({ endpoints: [node.url], fetch: expiring });
    const todos = client.collection("todos");
    await vi.waitFor(async () => expect(await todos.get("old")).not.toBeNull(), { timeout: 10_000 });
    phase = "armed";
    await todos.set("new", { title: "after" });
    await settled(client);
    expect(cursorsAfter410).toEqual([""]);
    expect((await node.document("todos", "new"))?.data).toEqual({ title: "after" });
    expect((await todos.query()).map((d) => d.id)).toEqual(["new", "old"]);
  });

  it("surfaces a mutation the node refuses, rolls it back and delivers the others", async () => {
    const node = await startNode(undefined, { config: '[collections.tasks.schema]\ntype = "object"\nrequired = ["title"]\n' });
    const client = await openClient({ endpoints: [node.url] });
    const rejected: Rejection[] = [];
    client.on("rejected", (rejection) => rejected.push(rejection));
    const tasks = client.collection("tasks");
    await tasks.set("bad", { note: "no title" });
    await tasks.set("good", { title: "ok" });
    await settled(client);
    expect(rejected.map((r) => [r.id, r.problem.type])).toEqual([["bad", "schema_violation"]]);
    expect((await client.rejections()).map((r) => r.id)).toEqual(["bad"]);
    expect(await tasks.get("bad")).toBeNull();
    expect(await node.document("tasks", "bad")).toBeNull();
    expect((await node.document("tasks", "good"))?.data).toEqual({ title: "ok" });
  });

  it("pulls and follows only the collections of its scope, and still pushes to others", async () => {
    const node = await startNode();
    await node.put("notes", "n0", { text: "not followed" });
    const client = await openClient({ endpoints: [node.url], syncCollections: ["todos"] });
    await client.collection("notes").set("n1", { text: "mine" });
    await node.put("todos", "t1", { title: "followed" });
    await vi.waitFor(async () => expect(await client.collection("todos").get("t1")).not.toBeNull(), { timeout: 10_000 });
    await settled(client);
    expect((await node.document("notes", "n1"))?.data).toEqual({ text: "mine" });
    expect(await client.collection("notes").query()).toEqual([]); // settled out of scope: gone here
  });

  it("re-stamps writes from a device whose clock runs an hour ahead, once the node refuses them", async () => {
    const node = await startNode();
    const client = await openClient({ endpoints: [node.url], now: () => Date.now() + 3_600_000 });
    await client.collection("todos").set("t1", { title: "from the future" });
    await settled(client);
    const stored = await node.document("todos", "t1");
    expect(stored?.data).toEqual({ title: "from the future" });
    const wallMs = Number(stored?.hlc.slice(0, 13));
    expect(wallMs).toBeLessThan(Date.now() + 60_000); // within the node's max_clock_skew
  });

  it("fails over to the region's other node when its node stops, and applies every write once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bw-shared-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const store = `sqlite:///${join(dir, "shared.db")}`;
    const [a, b] = [await startNode(undefined, { store }), await startNode(undefined, { store })];
    // one region: no probing; the device takes its nodes in its own seeded order
    const client = await openClient({ endpoints: [], regions: { here: [a!.url, b!.url] }, breakerFailures: 1 });
    const counters = client.collection("counters");
    await counters.increment("c", { n: 1 });
    await settled(client);
    const [used, other] = client.status.endpoint === a!.url ? [a!, b!] : [b!, a!];
    expect(client.status.endpoint).toBe(used.url);
    await used.stop();
    await counters.increment("c", { n: 1 });
    await counters.increment("c", { n: 1 });
    await settled(client);
    expect(client.status.endpoint).toBe(other.url);
    expect((await other.document("counters", "c"))?.data).toEqual({ n: 3 });
    expect((await counters.get("c"))?.data).toEqual({ n: 3 });
  });

  it("fails over to the next endpoint when the first does not answer", async () => {
    const node = await startNode();
    const dead = `http://127.0.0.1:${await freePort()}`;
    const client = await openClient({ endpoints: [dead, node.url] });
    await client.collection("todos").set("t1", { title: "x" });
    await settled(client);
    expect(client.status.endpoint).toBe(node.url);
    expect((await node.document("todos", "t1"))?.data).toEqual({ title: "x" });
  });
});
