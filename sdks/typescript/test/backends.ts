// The storage adapters the SDK ships, each fresh and reopenable: for suites run against every backend.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import Database from "better-sqlite3";
import { IDBFactory, IDBKeyRange } from "fake-indexeddb";
import { afterAll } from "vitest";

import type { StorageAdapter } from "../src/storage/adapter.js";
import { IndexedDbStorage } from "../src/storage/indexeddb.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { SqlStorage } from "../src/storage/sql.js";

const dir = mkdtempSync(join(tmpdir(), "bw-storage-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

export interface Backend {
  name: string;
  /** A fresh store, and how to open it again (the same data) after closing it. */
  make(): Promise<{ store: StorageAdapter; reopen: () => Promise<StorageAdapter> }>;
}

let serial = 0;
export const BACKENDS: Backend[] = [
  {
    name: "memory",
    async make() {
      const store = new MemoryStorage();
      return { store, reopen: async () => store };
    },
  },
  {
    name: "indexeddb",
    async make() {
      const factory = new IDBFactory();
      const name = `db${serial++}`;
      const open = () => IndexedDbStorage.open(name, factory, IDBKeyRange);
      return { store: await open(), reopen: open };
    },
  },
  {
    name: "sql",
    async make() {
      const path = join(dir, `db${serial++}.sqlite`);
      return { store: new SqlStorage(new Database(path)), reopen: async () => new SqlStorage(new Database(path)) };
    },
  },
];

