// The upload queue against a real `breakwater serve` (test/node.ts): queued while the node is
// down, the app restarts, then every PATCH is cut at a random point (part of its body reaches the
// node, the answer never comes back) and resumed from the node's offset; the node serves the
// exact bytes, by the SHA-256 the device computed.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";

import { Client } from "../src/client.js";
import { EndpointUnavailable } from "../src/errors.js";
import { SqlStorage } from "../src/storage/sql.js";
import type { QueuedFile } from "../src/upload-queue.js";
import { freePort, Node } from "./node.js";
import { prng } from "./prng.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A `fetch` whose PATCHes send only a random prefix of their body and then fail, `cuts` times. */
function cutting(cuts: number, random: () => number): { fetch: typeof fetch; cut: () => number } {
  let done = 0;
  const wrapped: typeof fetch = async (input, init) => {
    if (init?.method !== "PATCH" || done >= cuts) return fetch(input, init);
    done += 1;
    const body = init.body as Uint8Array<ArrayBuffer>;
    const part = body.subarray(0, Math.floor(random() * body.length));
    await fetch(input, { ...init, body: part }); // the bytes that arrived before the cut
    throw new TypeError("fetch failed: connection reset");
  };
  return { fetch: wrapped, cut: () => done };
}

describe("uploads against breakwater serve", () => {
  it("sends a file queued offline after a restart, through cuts at random points, bytes exact", { timeout: 120_000 }, async () => {
    const directory = mkdtempSync(join(tmpdir(), "bw-device-"));
    cleanups.push(async () => rmSync(directory, { recursive: true, force: true }));
    const port = await freePort();
    const bytes = Uint8Array.from({ length: 3_000_000 }, (_, i) => (i * 7919 + (i >> 11)) & 0xff);
    const open = async (fetchFn: typeof fetch): Promise<Client> =>
      Client.open({ endpoints: [`http://127.0.0.1:${port}`], storage: new SqlStorage(new Database(join(directory, "device.db"))), sync: false, fetch: fetchFn });

    const offline = await open(fetch);
    const queue = offline.uploadQueue({ backoffBaseMs: 20, backoffCapMs: 100 });
    const queued = await queue.enqueue(new Blob([bytes], { type: "application/pdf" }), "docs", { filename: "report.pdf" });
    expect(queued.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    await expect(queue.runOnce()).rejects.toBeInstanceOf(EndpointUnavailable); // no node yet
    await offline.close();

    const node = new Node(port);
    cleanups.push(() => node.remove());
    await node.start();
    const network = cutting(4, prng(20_261_206));
    const restarted = await open(network.fetch);
    cleanups.push(() => restarted.close());
    const again = restarted.uploadQueue({ chunkSize: 512 * 1024, backoffBaseMs: 20, backoffCapMs: 100 });
    expect((await again.queued()).map((f) => f.sha256)).toEqual([queued.sha256]);
    const seen: number[] = [];
    again.on("progress", ({ sent }) => seen.push(sent));
    const uploaded: QueuedFile[] = [];
    again.on("uploaded", (file) => uploaded.push(file));
    expect(await again.run(undefined, 20)).toBe(1);

    expect(network.cut()).toBe(4);
    expect(uploaded.map((f) => f.sha256)).toEqual([queued.sha256]);
    expect(seen.at(-1)).toBe(bytes.length);
    expect(await again.queued()).toEqual([]);
    const download = await fetch(`${node.url}/v1/files/${queued.sha256}`);
    expect(download.status).toBe(200);
    expect(download.headers.get("content-type")).toBe("application/pdf");
    expect(Buffer.compare(Buffer.from(await download.arrayBuffer()), bytes)).toBe(0);
  });
});
