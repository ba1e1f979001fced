// What one settled online write costs a device running the TypeScript SDK in Node (issue 22):
// round trips (HTTP requests, and pushes sent on the realtime WebSocket), bytes on the wire both
// ways, and the device process's CPU. A `breakwater serve`
// (this repository's venv, a free port, a temporary data directory) behind a byte-counting TCP
// proxy in a child process (so its CPU is not the device's); one client (memory storage,
// WebSocket realtime through the proxy) makes BENCH_WRITES writes of a small todo, each followed
// by a wait for an empty outbox and a pause of BENCH_PAUSE_MS. Five writes first, uncounted.
// Bytes are what crosses the proxy's sockets: HTTP request and status lines, headers and bodies,
// WebSocket frames (the realtime echo included). CPU is `process.cpuUsage()` of this process.
// BENCH_SDK: another build of the SDK (its dist/index.js), to compare versions in one sitting.
// BENCH_STORAGE: `memory` (default), `indexeddb` (fake-indexeddb, in memory) or `sql` (better-sqlite3,
// a file in the temporary directory).
// Run: `npm run build && node bench/per-write.mjs` (prints one JSON line).
import { fork, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { WebSocket } from "ws";

const HERE = fileURLToPath(new URL("..", import.meta.url));
const WRITES = Number(process.env.BENCH_WRITES ?? 50);
const PAUSE_MS = Number(process.env.BENCH_PAUSE_MS ?? 150);
const SDK = process.env.BENCH_SDK ?? join(HERE, "dist/index.js");
const STORAGE = process.env.BENCH_STORAGE ?? "memory";
const BREAKWATER = process.env.BREAKWATER_BIN ?? join(HERE, "../../.venv/bin/breakwater");

if (process.argv[2] === "proxy") {
  // The child: forward `listen` to `target`, count bytes each way, answer the parent's "count".
  const [, , , target] = process.argv;
  const [host, port] = target.split(":");
  let up = 0;
  let down = 0;
  const server = createServer((client) => {
    const upstream = createConnection({ host, port: Number(port) });
    client.on("data", (chunk) => (up += chunk.length));
    upstream.on("data", (chunk) => (down += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => (client.destroy(), upstream.destroy());
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }));
  process.on("message", () => process.send({ up, down }));
} else {
  await main();
}

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(condition, what, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The device's storage the client writes to (BENCH_STORAGE). */
async function openStorage(sdk, dir) {
  if (STORAGE === "memory") return new sdk.MemoryStorage();
  if (STORAGE === "indexeddb") {
    const { IDBFactory, IDBKeyRange } = await import("fake-indexeddb");
    return sdk.IndexedDbStorage.open("bench", new IDBFactory(), IDBKeyRange);
  }
  if (STORAGE === "sql") {
    const { default: Database } = await import("better-sqlite3");
    return new sdk.SqlStorage(new Database(join(dir, "device.sqlite")));
  }
  throw new Error(`BENCH_STORAGE: memory, indexeddb or sql, not ${STORAGE}`);
}

async function main() {
  const sdk = await import(pathToFileURL(SDK).href);
  const { Client } = sdk;
  const data = mkdtempSync(join(tmpdir(), "bw-per-write-"));
  const port = await freePort();
  const node = spawn(BREAKWATER, ["serve", "--host", "127.0.0.1", "--port", String(port), "--data", data, "--log-level", "warning"], { stdio: ["ignore", "ignore", "inherit"] });
  const proxy = fork(fileURLToPath(import.meta.url), ["proxy", `127.0.0.1:${port}`]);
  let client = null;
  try {
    const proxyPort = await new Promise((resolve) => proxy.once("message", (m) => resolve(m.port)));
    const counts = () => new Promise((resolve) => (proxy.once("message", resolve), proxy.send("count")));
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok, "the node");
    const requests = [];
    const counting = (input, init) => {
      requests.push(`${init?.method ?? "GET"} ${new URL(String(input)).pathname}`);
      return fetch(input, init);
    };
    let socketPushes = 0;
    class CountingWebSocket extends WebSocket {
      send(data) {
        if (JSON.parse(data).type === "push") socketPushes += 1;
        super.send(data);
      }
    }
    client = await Client.open({ endpoints: [`http://127.0.0.1:${proxyPort}`], storage: await openStorage(sdk, data), fetch: counting, WebSocket: CountingWebSocket, pollIntervalMs: 600_000 });
    await waitFor(() => client.status.state === "online" && client.status.transport === "websocket", "online over a WebSocket");
    const todos = client.collection("todos");
    const write = async (i) => {
      await todos.set(`t${i}`, { title: `buy milk ${i}`, done: false, list: "groceries" });
      await waitFor(() => client.outbox().length === 0, `write ${i} settled`);
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
    };
    for (let i = 0; i < 5; i++) await write(i);
    const before = { ...(await counts()), requests: requests.length, socketPushes, cpu: process.cpuUsage() };
    for (let i = 5; i < 5 + WRITES; i++) await write(i);
    const cpu = process.cpuUsage(before.cpu);
    const after = await counts();
    const counted = requests.slice(before.requests);
    const per = (n) => Math.round((n / WRITES) * 100) / 100;
    console.log(
      JSON.stringify({
        sdk: SDK,
        storage: STORAGE,
        writes: WRITES,
        requests: per(counted.length),
        pushes: per(counted.filter((r) => r === "POST /v1/sync/push").length),
        pulls: per(counted.filter((r) => r === "GET /v1/sync/pull").length),
        socket_pushes: per(socketPushes - before.socketPushes),
        bytes_out: per(after.up - before.up),
        bytes_in: per(after.down - before.down),
        cpu_ms: Math.round(((cpu.user + cpu.system) / 1000 / WRITES) * 1000) / 1000,
      }),
    );
  } finally {
    await client?.close();
    proxy.kill();
    node.kill("SIGTERM");
    await new Promise((resolve) => (node.exitCode !== null ? resolve() : node.once("exit", resolve)));
    rmSync(data, { recursive: true, force: true });
  }
}
