// The offline upload queue (src/upload-queue.ts) against a fake tus 1.0 server behind `fetch`,
// over each storage adapter: durable across a reopen, resumed from the node's offset after a cut,
// refusals kept as failed, progress reported.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import Database from "better-sqlite3";
import { IDBFactory, IDBKeyRange } from "fake-indexeddb";
import { afterAll, describe, expect, it } from "vitest";

import { EndpointUnavailable } from "../src/errors.js";
import type { StorageAdapter } from "../src/storage/adapter.js";
import { IndexedDbStorage } from "../src/storage/indexeddb.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { SqlStorage } from "../src/storage/sql.js";
import { UploadQueue } from "../src/upload-queue.js";
import { prng } from "./prng.js";

const dir = mkdtempSync(join(tmpdir(), "bw-uploads-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A tus server in memory; `cut(n)` drops the connection of the n-th PATCH after part of its body arrived. */
class FakeTus {
  readonly uploads = new Map<string, { length: number; bytes: Buffer; metadata: string }>();
  readonly patches: number[] = [];
  cuts = new Set<number>();
  refuse: { status: number; type: string } | null = null;
  private next = 0;

  constructor(private readonly random: () => number) {}

  readonly fetch: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const headers = new Headers(init?.headers);
    expect(headers.get("tus-resumable")).toBe("1.0.0");
    if (init?.method === "POST") {
      if (this.refuse !== null) return new Response(JSON.stringify({ type: this.refuse.type }), { status: this.refuse.status });
      const id = `u${this.next++}`;
      this.uploads.set(id, { length: Number(headers.get("upload-length")), bytes: Buffer.alloc(0), metadata: headers.get("upload-metadata") ?? "" });
      return new Response(null, { status: 201, headers: { location: `/v1/uploads/${id}` } });
    }
    const upload = this.uploads.get(url.pathname.split("/").at(-1) ?? "");
    if (upload === undefined) return new Response(null, { status: 404 });
    if (init?.method === "HEAD") return new Response(null, { status: 200, headers: { "upload-offset": String(upload.bytes.length) } });
    const offset = Number(headers.get("upload-offset"));
    if (offset !== upload.bytes.length) return new Response(null, { status: 409, headers: { "upload-offset": String(upload.bytes.length) } });
    const body = init?.body as Uint8Array;
    this.patches.push(offset);
    if (this.cuts.has(this.patches.length)) {
      upload.bytes = Buffer.concat([upload.bytes, body.subarray(0, Math.floor(this.random() * body.length))]); // what arrived before the cut
      throw new TypeError("fetch failed: connection reset");
    }
    upload.bytes = Buffer.concat([upload.bytes, body]);
    return new Response(null, { status: 204, headers: { "upload-offset": String(upload.bytes.length) } });
  };

  /** Whether the server holds exactly `expected` as its only (or `n`-th) upload. */
  holds(expected: Uint8Array, n = 0): boolean {
    const held = [...this.uploads.values()][n]?.bytes;
    return held !== undefined && Buffer.compare(held, expected) === 0;
  }
}

function data(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const next = prng(seed);
  return Uint8Array.from({ length: size }, () => Math.floor(next() * 256));
}

let serial = 0;
const BACKENDS: { name: string; open: () => Promise<() => Promise<StorageAdapter>> }[] = [
  {
    name: "memory",
    async open() {
      const store = new MemoryStorage();
      return async () => store;
    },
  },
  {
    name: "indexeddb",
    async open() {
      const factory = new IDBFactory();
      const name = `u${serial++}`;
      return () => IndexedDbStorage.open(name, factory, IDBKeyRange, undefined);
    },
  },
  {
    name: "sql",
    async open() {
      const path = join(dir, `u${serial++}.db`);
      return async () => new SqlStorage(new Database(path));
    },
  },
];

describe.each(BACKENDS)("UploadQueue on $name storage", ({ open }) => {
  it("keeps a queued upload across a restart and sends it whole, reporting progress", async () => {
    const reopen = await open();
    const server = new FakeTus(prng(1));
    const first = await reopen();
    const bytes = data(700_000, 7); // several stored pieces and PATCHes
    const queued = await new UploadQueue(first, "http://node", server.fetch).enqueue(bytes, "photos", { contentType: "image/png", filename: "a.png" });
    bytes.fill(0); // the app reuses its buffer: the queue kept a copy
    expect(queued).toMatchObject({ size: 700_000, collection: "photos", contentType: "image/png", filename: "a.png", state: "pending" });
    await first.close();

    const second = await reopen();
    const queue = new UploadQueue(second, "http://node", server.fetch, undefined, { chunkSize: 256 * 1024 });
    expect((await queue.queued()).map((f) => f.sha256)).toEqual([queued.sha256]);
    const sent: number[] = [];
    queue.on("progress", ({ sent: n }) => sent.push(n));
    expect(await queue.run()).toBe(1);
    expect(server.holds(data(700_000, 7))).toBe(true);
    expect(sent).toEqual([0, 262_144, 524_288, 700_000]);
    expect(await queue.queued()).toEqual([]);
    expect(await second.list("uploads", "d/")).toEqual([]); // the bytes left the device
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data(700_000, 7)));
    expect(queued.sha256).toBe(Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""));
    await second.close();
  });

  it("resumes from the node's offset after cuts at random points, bytes exact, across a restart", async () => {
    const reopen = await open();
    const server = new FakeTus(prng(2));
    server.cuts = new Set([2, 3, 6]);
    let storage = await reopen();
    let queue = new UploadQueue(storage, "http://node", server.fetch, undefined, { chunkSize: 100_000, backoffBaseMs: 1, backoffCapMs: 5 });
    await queue.enqueue(new Blob([data(450_000, 9)], { type: "application/pdf" }), "docs");
    await expect(queue.runOnce()).rejects.toBeInstanceOf(EndpointUnavailable); // cut at the second PATCH
    await storage.close();
    storage = await reopen(); // the app restarts
    queue = new UploadQueue(storage, "http://node", server.fetch, undefined, { chunkSize: 100_000, backoffBaseMs: 1, backoffCapMs: 5 });
    expect(await queue.run()).toBe(1);
    expect(server.uploads.size).toBe(1); // resumed, never started again
    expect(server.holds(data(450_000, 9))).toBe(true);
    const sent = server.patches.reduce((sum, offset) => sum + Math.min(100_000, 450_000 - offset), 0);
    expect(sent).toBeLessThanOrEqual(450_000 + 3 * 100_000); // at most the three chunks in flight again
    await storage.close();
  });
});

describe("UploadQueue refusals", () => {
  it("marks an upload the node refuses as failed with the reason, and goes on with the next", async () => {
    const server = new FakeTus(prng(3));
    const queue = new UploadQueue(new MemoryStorage(), "http://node", server.fetch);
    const refused = await queue.enqueue(data(10, 1), "secret");
    const failed: string[] = [];
    queue.on("failed", (file) => failed.push(file.problem));
    server.refuse = { status: 403, type: "forbidden" };
    expect(await queue.runOnce()).toBe(0);
    server.refuse = null;
    await queue.enqueue(data(10, 2), "photos");
    expect(await queue.runOnce()).toBe(1);
    expect(await queue.queued()).toEqual([{ ...refused, state: "failed", problem: "forbidden" }]);
    expect(failed).toEqual(["forbidden"]);
  });

  it("keeps the upload and throws EndpointUnavailable while the node is away, and bounds its attempts", async () => {
    const queue = new UploadQueue(new MemoryStorage(), "http://node", async () => new Response(null, { status: 503 }), undefined, { backoffBaseMs: 1, backoffCapMs: 2 });
    await queue.enqueue(data(10, 1), "photos");
    await expect(queue.run(undefined, 3)).rejects.toBeInstanceOf(EndpointUnavailable);
    expect((await queue.queued()).map((f) => f.state)).toEqual(["pending"]);
  });
});

describe("IndexedDB storage from before uploads", () => {
  it("gains the uploads table on open and keeps what it held", async () => {
    const factory = new IDBFactory();
    const old = factory.open("before-uploads", 1);
    old.onupgradeneeded = () => {
      for (const table of ["meta", "server", "docs", "outbox", "rejected"]) old.result.createObjectStore(table);
    };
    const db = await new Promise<IDBDatabase>((resolve) => (old.onsuccess = () => resolve(old.result)));
    await new Promise((resolve) => {
      const tx = db.transaction("meta", "readwrite");
      tx.objectStore("meta").put("dev1", "device_id");
      tx.oncomplete = resolve;
    });
    db.close();
    const storage = await IndexedDbStorage.open("before-uploads", factory, IDBKeyRange, undefined);
    expect(await storage.get("meta", "device_id")).toBe("dev1");
    const queued = await new UploadQueue(storage, "http://node").enqueue(data(10, 1), "photos");
    expect((await new UploadQueue(storage, "http://node").queued()).map((f) => f.id)).toEqual([queued.id]);
    await storage.close();
  });

  it("closes its connection when a newer version asks, so the upgrade does not wait", async () => {
    const factory = new IDBFactory();
    const current = await IndexedDbStorage.open("upgraded", factory, IDBKeyRange, undefined);
    const newer = factory.open("upgraded", 3);
    newer.onupgradeneeded = () => newer.result.createObjectStore("later");
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      newer.onsuccess = () => resolve(newer.result);
      newer.onerror = () => reject(newer.error);
    });
    expect(db.objectStoreNames.contains("later")).toBe(true);
    db.close();
    await expect(current.get("meta", "device_id")).rejects.toThrow();
  });
});
