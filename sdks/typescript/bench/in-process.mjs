// The SDK's own CPU per settled write, without sockets, zlib or a node: one client (memory
// storage) against a fake node in this process that answers each `push` on its fake WebSocket
// with the `pushed` message and the realtime echo a node sends (docs/protocol.md). WARM writes
// first, uncounted, then N counted ones, each awaited until the outbox is empty, then PAUSE ms.
// Prints `process.cpuUsage()` per write. Its run is steadier than bench/per-write.mjs's (no other
// process, no network), and under callgrind the difference of N=50 and N=0 counts instructions:
//   WARM=5 N=50 valgrind --tool=callgrind node --single-threaded bench/in-process.mjs
// BENCH_SDK: another build of the SDK (its dist/index.js).
import { fileURLToPath, pathToFileURL } from "node:url";

const SDK = process.env.BENCH_SDK ?? fileURLToPath(new URL("../dist/index.js", import.meta.url));
const WARM = Number(process.env.WARM ?? 500);
const N = Number(process.env.N ?? 3000);
const PAUSE = Number(process.env.PAUSE ?? 0);
const ORIGIN = "local~d798fb2ed2c6";
const VERSION = "8d1088dce5a4315ff9a3";

const { Client, MemoryStorage } = await import(pathToFileURL(SDK).href);
let seq = 0;
const cursorOf = (s) => "c1." + Buffer.from(JSON.stringify({ [ORIGIN]: s })).toString("base64url");
const json = (body) => new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });

/** The node's HTTP side: readiness, the region directory and an empty first pull. */
async function fakeFetch(input) {
  const path = new URL(String(input)).pathname;
  if (path === "/v1/sync/pull") return json({ changes: [], cursor: cursorOf(seq), has_more: false, stable: {} });
  if (path === "/v1/regions") return json({ regions: [] });
  return json({ status: "ok" });
}

/** The node's realtime socket: a `pushed` answer (the state derived, as a node sends it), then the echo. */
class FakeWebSocket {
  CONNECTING = 0;
  OPEN = 1;
  readyState = 0;
  constructor() {
    setTimeout(() => ((this.readyState = 1), this.onopen?.()), 0);
  }
  send(text) {
    const message = JSON.parse(text);
    if (message.type !== "push") return;
    const [m] = message.mutations;
    const s = (seq += 1);
    const pushed = { type: "pushed", id: message.id, origin: ORIGIN, results: [{ seq: s, version: VERSION, hlc: m.hlc }], hlc: m.hlc, stable: { [ORIGIN]: s }, derive: true };
    const change = { origin: ORIGIN, seq: s, collection: m.collection, id: m.id, op: m.op, mutation_id: m.mutation_id, hlc: m.hlc, deleted: false, version: VERSION, data: m.data };
    setImmediate(() => {
      this.onmessage?.({ data: JSON.stringify(pushed) });
      setImmediate(() => this.onmessage?.({ data: JSON.stringify({ type: "changes", changes: [change], cursor: cursorOf(s), stable: { [ORIGIN]: s } }) }));
    });
  }
  close() {
    this.readyState = 3;
  }
}

const client = await Client.open({ endpoints: ["http://node.invalid"], storage: new MemoryStorage(), fetch: fakeFetch, WebSocket: FakeWebSocket, pollIntervalMs: 600_000 });
while (client.status.state !== "online" || client.status.transport !== "websocket") await new Promise((r) => setTimeout(r, 1));
const todos = client.collection("todos");
let settled = null;
client.on("status", () => {
  if (settled !== null && client.outbox().length === 0) settled = (settled(), null);
});
const tick = () => new Promise((r) => setImmediate(r));
async function write(i) {
  const done = new Promise((r) => (settled = r));
  await todos.set(`t${i}`, { title: `buy milk ${i}`, done: false, list: "groceries" });
  await done;
  await tick(); // the echo
  await tick();
  if (PAUSE > 0) await new Promise((r) => setTimeout(r, PAUSE));
}
for (let i = 0; i < WARM; i++) await write(i);
const before = process.cpuUsage();
for (let i = WARM; i < WARM + N; i++) await write(i);
const cpu = process.cpuUsage(before);
console.log(JSON.stringify({ sdk: SDK, warm: WARM, writes: N, pause_ms: PAUSE, cpu_us: N > 0 ? Math.round((cpu.user + cpu.system) / N) : null }));
await client.close();
