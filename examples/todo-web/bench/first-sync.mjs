// First sync of 10,000 documents into IndexedDB in Chromium: the SDK pulling from a
// `breakwater serve`, against PouchDB replicating the same documents from pouchdb-server, in the
// same browser and run (issue 20's target: >= 5x PouchDB's docs/s). Both start from an empty
// browser database; each run uses new database names; the two are interleaved run by run. The
// CPU time of each server process during its sync is read from /proc. The floor: the same number
// of ~1 KB documents put into IndexedDB in one durable transaction, no network, in the same page.
// BENCH_SDK: another build of the SDK (its dist/index.js), to compare versions in one sitting.
// Run: `POUCHDB_DIR=<dir with pouchdb-server and pouchdb in node_modules> node bench/first-sync.mjs`
// (after `npm ci` here and `npm run build` in sdks/typescript; /work/shared/peers/install.sh
// pouchdb installs both packages).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, request } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const HERE = fileURLToPath(new URL("..", import.meta.url));
const DOCS = Number(process.env.BENCH_DOCS ?? 10_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const POUCHDB_DIR = process.env.POUCHDB_DIR ?? "/tmp/peers/pouch";
const BREAKWATER = process.env.BREAKWATER_BIN ?? join(HERE, "../../.venv/bin/breakwater");
const PAD = "x".repeat(960); // 1 KB documents, as /work/shared/peers/pouch_client_sync.js
const TICKS = 100; // clock ticks per second (/proc/<pid>/stat)

const children = [];
const scratch = mkdtempSync(join(tmpdir(), "bw-first-sync-"));

function freePort() {
  return new Promise((resolve) => {
    const server = createNetServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function start(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "inherit"], ...options });
  children.push(child);
  return child;
}

async function waitFor(url) {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer`);
}

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function post(url, body) {
  const answer = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!answer.ok) throw new Error(`${url}: ${answer.status} ${await answer.text()}`);
  return answer.json();
}

const bwPort = await freePort();
const pouchPort = await freePort();
const bwUrl = `http://127.0.0.1:${bwPort}`;
const pouchUrl = `http://127.0.0.1:${pouchPort}`;
const node = start(BREAKWATER, ["serve", "--host", "127.0.0.1", "--port", String(bwPort), "--data", join(scratch, "bw"), "--log-level", "warning"]);
const pouch = start(process.execPath, [join(POUCHDB_DIR, "node_modules/.bin/pouchdb-server"), "--host", "127.0.0.1", "--port", String(pouchPort), "--dir", join(scratch, "pouch"), "--config", join(scratch, "pouch-config.json"), "-n"], { cwd: scratch });
try {
  await Promise.all([waitFor(`${bwUrl}/healthz`), waitFor(`${pouchUrl}/`)]);
  // The same documents on both servers.
  const stamp = String(Date.now()).padStart(13, "0");
  for (let i = 0; i < DOCS; i += 500) {
    const mutations = Array.from({ length: Math.min(500, DOCS - i) }, (_, k) => ({
      mutation_id: `seed.${i + k}`, collection: "docs", id: `d${String(i + k).padStart(6, "0")}`, op: "set",
      data: { j: i + k, pad: PAD }, hlc: `${stamp}-${String(i + k).padStart(4, "0").slice(-4)}-seed`,
    }));
    await post(`${bwUrl}/v1/sync/push`, { client_id: "seed", mutations });
  }
  await fetch(`${pouchUrl}/bench`, { method: "PUT" });
  for (let i = 0; i < DOCS; i += 1000) {
    await post(`${pouchUrl}/bench/_bulk_docs`, { docs: Array.from({ length: Math.min(1000, DOCS - i) }, (_, k) => ({ _id: `d${String(i + k).padStart(6, "0")}`, j: i + k, pad: PAD })) });
  }

  const page = await build({
    stdin: {
      resolveDir: process.cwd(),
      contents: `
        import { Client, IndexedDbStorage } from "@breakwater/client";
        window.breakwaterSync = async (nodeUrl, name, docs) => {
          const start = performance.now();
          const client = await Client.open({ endpoints: [nodeUrl], storage: await IndexedDbStorage.open(name) });
          await new Promise((resolve) => client.on("progress", (p) => { if (!p.hasMore) resolve(); }));
          const ms = performance.now() - start;
          const stored = (await client.collection("docs").query()).length;
          await client.close();
          return { ms, stored };
        };
        window.idbFloor = async (name, docs, pad) => {
          const start = performance.now();
          const db = await new Promise((resolve, reject) => {
            const open = indexedDB.open(name, 1);
            open.onupgradeneeded = () => open.result.createObjectStore("docs");
            open.onsuccess = () => resolve(open.result);
            open.onerror = () => reject(open.error);
          });
          await new Promise((resolve, reject) => {
            const tx = db.transaction("docs", "readwrite", { durability: "strict" });
            const store = tx.objectStore("docs");
            for (let i = 0; i < docs; i++) store.put({ j: i, pad }, "docs/d" + String(i).padStart(6, "0"));
            tx.oncomplete = resolve;
            tx.onerror = () => reject(tx.error);
          });
          db.close();
          return { ms: performance.now() - start, stored: docs };
        };
        window.pouchSync = async (remote, name) => {
          const start = performance.now();
          const result = await new PouchDB(name).replicate.from(remote);
          return { ms: performance.now() - start, stored: result.docs_written };
        };`,
    },
    bundle: true, format: "esm", write: false, alias: process.env.BENCH_SDK ? { "@breakwater/client": process.env.BENCH_SDK } : {},
  });
  const pouchScript = readFileSync(join(POUCHDB_DIR, "node_modules/pouchdb/dist/pouchdb.min.js"), "utf8");
  const html = `<!doctype html><script>${pouchScript}</script><script type="module">${page.outputFiles[0].text}</script>`;
  // The page and pouchdb-server on one origin (a proxy under /pouch/), so PouchDB needs no CORS;
  // the node allows loopback pages by default.
  const server = createServer((req, res) => {
    if (!req.url.startsWith("/pouch/")) return res.writeHead(200, { "content-type": "text/html" }).end(html);
    const upstream = request(`${pouchUrl}${req.url.slice("/pouch".length)}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy()); // PouchDB retries a cut request
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const pageUrl = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const tab = await (await browser.newContext()).newPage();
    await tab.goto(pageUrl);
    await tab.waitForFunction(() => typeof window.breakwaterSync === "function" && typeof window.PouchDB === "function");
    const runs = [];
    for (let run = 1; run <= RUNS; run++) {
      const load = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
      let cpu = cpuSeconds(node.pid);
      const ours = await tab.evaluate(([url, name, n]) => window.breakwaterSync(url, name, n), [bwUrl, `bw-${run}`, DOCS]);
      const ourCpu = cpuSeconds(node.pid) - cpu;
      cpu = cpuSeconds(pouch.pid);
      const theirs = await tab.evaluate(([url, name]) => window.pouchSync(url, name), [`${pageUrl}/pouch/bench`, `pouch-${run}`]);
      const theirCpu = cpuSeconds(pouch.pid) - cpu;
      const floor = await tab.evaluate(([name, n, pad]) => window.idbFloor(name, n, pad), [`floor-${run}`, DOCS, PAD]);
      const row = {
        run, load,
        breakwater: { docsPerS: Math.round((ours.stored / ours.ms) * 1000), stored: ours.stored, nodeCpuS: Number(ourCpu.toFixed(2)) },
        pouchdb: { docsPerS: Math.round((theirs.stored / theirs.ms) * 1000), stored: theirs.stored, serverCpuS: Number(theirCpu.toFixed(2)) },
      };
      row.ratio = Number((row.breakwater.docsPerS / row.pouchdb.docsPerS).toFixed(2));
      row.floorDocsPerS = Math.round((floor.stored / floor.ms) * 1000);
      row.ofFloor = Number((row.breakwater.docsPerS / row.floorDocsPerS).toFixed(2));
      runs.push(row);
      console.log(JSON.stringify(row));
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(JSON.stringify({
      docs: DOCS, runs: RUNS, chromium: browser.version(),
      median: {
        breakwaterDocsPerS: median(runs.map((r) => r.breakwater.docsPerS)),
        pouchdbDocsPerS: median(runs.map((r) => r.pouchdb.docsPerS)),
        ratio: median(runs.map((r) => r.ratio)),
        floorDocsPerS: median(runs.map((r) => r.floorDocsPerS)),
        ofFloor: median(runs.map((r) => r.ofFloor)),
        breakwaterNodeCpuS: median(runs.map((r) => r.breakwater.nodeCpuS)),
        pouchdbServerCpuS: median(runs.map((r) => r.pouchdb.serverCpuS)),
      },
    }));
  } finally {
    await browser.close();
    server.close();
  }
} finally {
  for (const child of children) child.kill("SIGTERM");
  await new Promise((resolve) => setTimeout(resolve, 500));
  rmSync(scratch, { recursive: true, force: true });
}
