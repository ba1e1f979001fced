// Local write and live-query latency of the SDK in Chromium with 10,000 documents stored in
// IndexedDB (issue 20's "one frame" target: p99 <= 16 ms). No node: the client is opened with
// `sync: false`, so only the device's own work is timed. Also prints the SDK's bundle size, and
// the same browser's floors: a bare IndexedDB put of the same document in one durable
// transaction of its own, and the spacing of requestAnimationFrame callbacks (a frame).
// Run: `node bench/latency.mjs` (after `npm ci`; the SDK built in sdks/typescript/dist).
import { createServer } from "node:http";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const DOCS = Number(process.env.BENCH_DOCS ?? 10_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);

// BENCH_SDK: another build of the SDK (its dist/index.js), to compare two versions in one sitting.
const alias = process.env.BENCH_SDK ? { "@breakwater/client": process.env.BENCH_SDK } : {};
const sdk = await build({
  stdin: { contents: 'export * from "@breakwater/client";', resolveDir: process.cwd() },
  bundle: true, minify: true, format: "esm", write: false, alias,
});
const sdkBytes = sdk.outputFiles[0].contents;

const page = await build({
  stdin: {
    resolveDir: process.cwd(),
    contents: `
      import { Client, IndexedDbStorage } from "@breakwater/client";
      const percentile = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
      window.bench = async (docs, samples) => {
        const client = await Client.open({ endpoints: ["http://127.0.0.1:9"], storage: await IndexedDbStorage.open("bench"), sync: false });
        const todos = client.collection("todos");
        const loadStart = performance.now();
        for (let i = 0; i < docs; i += 500) {
          await Promise.all(Array.from({ length: Math.min(500, docs - i) }, (_, j) =>
            todos.set("d" + (i + j), { title: "todo " + (i + j), group: (i + j) % 100, done: false })));
        }
        const loadMs = performance.now() - loadStart;
        const writes = [];
        for (let i = 0; i < samples; i++) {
          const t = performance.now();
          await todos.patch("d" + ((i * 37) % docs), { done: i % 2 === 0 });
          writes.push(performance.now() - t);
        }
        // A live query over 100 of the 10,000 documents: time from a write to its listener call.
        const live = [];
        const afterWrite = []; // from the write's resolution to the listener's call
        let resolveSeen;
        const stop = todos.watch({ where: { group: 7 }, orderBy: "title" }, () => resolveSeen?.());
        await new Promise((r) => setTimeout(r, 200));
        for (let i = 0; i < samples; i++) {
          const seen = new Promise((r) => (resolveSeen = r));
          const t = performance.now();
          await todos.patch("d" + (7 + 100 * (i % (docs / 100))), { title: "todo " + i + "-" + Math.random() });
          const written = performance.now();
          await seen;
          live.push(performance.now() - t);
          afterWrite.push(performance.now() - written);
        }
        stop();
        await client.close();
        // Floors: the same document put alone in a durable IndexedDB transaction; rAF spacing.
        const db = await new Promise((resolve, reject) => {
          const open = indexedDB.open("floor", 1);
          open.onupgradeneeded = () => open.result.createObjectStore("docs");
          open.onsuccess = () => resolve(open.result);
          open.onerror = () => reject(open.error);
        });
        const puts = [];
        for (let i = 0; i < samples; i++) {
          const t = performance.now();
          await new Promise((resolve, reject) => {
            const tx = db.transaction("docs", "readwrite", { durability: "strict" });
            tx.objectStore("docs").put({ data: { title: "todo " + i, group: i % 100, done: i % 2 === 0 }, hlc: "x", pending: true }, "d" + i);
            tx.oncomplete = resolve;
            tx.onerror = () => reject(tx.error);
          });
          puts.push(performance.now() - t);
        }
        db.close();
        const frames = [];
        let last = await new Promise((r) => requestAnimationFrame(r));
        for (let i = 0; i < samples; i++) {
          const now = await new Promise((r) => requestAnimationFrame(r));
          frames.push(now - last);
          last = now;
        }
        return {
          docs, samples, loadMs: Math.round(loadMs),
          write: { p50: percentile(writes, 0.5), p99: percentile(writes, 0.99) },
          liveQuery: { p50: percentile(live, 0.5), p99: percentile(live, 0.99) },
          liveQueryAfterWrite: { p50: percentile(afterWrite, 0.5), p99: percentile(afterWrite, 0.99) },
          floorIdbPut: { p50: percentile(puts, 0.5), p99: percentile(puts, 0.99) },
          floorFrame: { p50: percentile(frames, 0.5), p99: percentile(frames, 0.99) },
        };
      };`,
  },
  bundle: true, format: "esm", write: false, alias,
});
const html = `<!doctype html><script type="module">${page.outputFiles[0].text}</script>`;
const server = createServer((_, res) => res.writeHead(200, { "content-type": "text/html" }).end(html));
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const tab = await (await browser.newContext()).newPage();
  await tab.goto(`http://127.0.0.1:${server.address().port}/`);
  await tab.waitForFunction(() => typeof window.bench === "function");
  const result = await tab.evaluate(([d, s]) => window.bench(d, s), [DOCS, SAMPLES]);
  const round = (x) => Math.round(x * 100) / 100;
  for (const key of ["write", "liveQuery", "liveQueryAfterWrite", "floorIdbPut", "floorFrame"]) for (const p of ["p50", "p99"]) result[key][p] = round(result[key][p]);
  result.bundle = { minified: sdkBytes.length, gzipped: gzipSync(sdkBytes, { level: 9 }).length };
  result.chromium = browser.version();
  console.log(JSON.stringify(result, null, 1));
} finally {
  await browser.close();
  server.close();
}
