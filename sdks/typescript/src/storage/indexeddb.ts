/**
 * Storage in IndexedDB, the browser default: one object store per table, one `readwrite`
 * transaction with `durability: "strict"` per commit, so a commit that resolved survives a crash.
 *
 * Several tabs of one app share the database (`tabs`, src/storage/tabs.ts): where Web Locks
 * exist, every tab reads and writes it one operation at a time and one tab syncs. Without Web
 * Locks (browsers before 2022) nothing coordinates the tabs: open the database in one tab only.
 */

import { STORE_TABLES, TABLES } from "./adapter.js";
import type { Read, StorageAdapter, Table, Write } from "./adapter.js";
import { BrowserTabs } from "./tabs.js";
import type { Channel, Tabs } from "./tabs.js";

/**
 * 2: the `uploads` table (an upgrade adds the tables a database lacks). A tab of an older
 * version holding the database open makes the upgrade wait (`blocked`) until it closes; from
 * version 2 on, a tab closes its connection when a newer version asks (its operations then fail
 * until the app reloads), so later upgrades do not wait.
 */
const VERSION = 2;

function done(request: IDBRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Resolves when `tx` commits, rejects when it aborts. */
function completion(tx: IDBTransaction): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

function put(tx: IDBTransaction, writes: readonly Write[]): void {
  for (const { table, key, value } of writes) {
    const store = tx.objectStore(table);
    if (value === undefined) store.delete(key);
    else store.put(value, key);
  }
}

export class IndexedDbStorage implements StorageAdapter {
  private constructor(
    private readonly db: IDBDatabase,
    private readonly keyRange: typeof IDBKeyRange,
    readonly tabs: Tabs | undefined,
  ) {}

  /**
   * Open (creating when new) the database `name`. `factory`, `keyRange`, `locks` and `channel`
   * default to the page's globals; without a `LockManager` the tabs are not coordinated.
   */
  static async open(
    name: string,
    factory: IDBFactory = indexedDB,
    keyRange: typeof IDBKeyRange = IDBKeyRange,
    locks: LockManager | undefined = globalThis.navigator?.locks,
    channel: (name: string) => Channel = (channelName) => new BroadcastChannel(channelName),
  ): Promise<IndexedDbStorage> {
    const request = factory.open(name, VERSION);
    request.onupgradeneeded = () => {
      for (const table of TABLES) {
        if (!request.result.objectStoreNames.contains(table)) request.result.createObjectStore(table);
      }
    };
    const db = (await done(request)) as IDBDatabase;
    db.onversionchange = () => db.close();
    return new IndexedDbStorage(db, keyRange, locks ? new BrowserTabs(name, locks, channel(`breakwater:${name}`)) : undefined);
  }

  async get(table: Table, key: string): Promise<unknown> {
    return done(this.db.transaction(table, "readonly").objectStore(table).get(key));
  }

  async getMany(table: Table, keys: readonly string[]): Promise<unknown[]> {
    const store = this.db.transaction(table, "readonly").objectStore(table);
    return Promise.all(keys.map((key) => done(store.get(key))));
  }

  async list(table: Table, prefix = ""): Promise<[string, unknown][]> {
    const store = this.db.transaction(table, "readonly").objectStore(table);
    const range = this.keyRange.bound(prefix, `${prefix}\uffff`);
    const [keys, values] = await Promise.all([done(store.getAllKeys(range)), done(store.getAll(range))]);
    return (keys as string[]).map((key, i) => [key, (values as unknown[])[i]]);
  }

  async commit(writes: readonly Write[]): Promise<void> {
    if (writes.length === 0) return;
    const tx = this.db.transaction([...new Set(writes.map((w) => w.table))], "readwrite", { durability: "strict" });
    const finished = completion(tx);
    put(tx, writes);
    await finished;
  }

  /** The reads queued first in the commit's own transaction; `plan` runs in the last read's callback, while it is active. */
  async update(reads: readonly Read[], plan: (values: unknown[]) => readonly Write[]): Promise<void> {
    const tx = this.db.transaction([...STORE_TABLES], "readwrite", { durability: "strict" });
    let failure: unknown = null;
    const finished = completion(tx).catch((error: unknown) => Promise.reject(failure ?? error));
    const values: unknown[] = [];
    const decide = (): void => {
      try {
        put(tx, plan(values));
      } catch (error) {
        failure = error;
        tx.abort();
      }
    };
    if (reads.length === 0) decide();
    reads.forEach(([table, key], i) => {
      const request = tx.objectStore(table).get(key);
      request.onsuccess = () => {
        values[i] = request.result; // requests of one transaction succeed in the order they were made
        if (i === reads.length - 1) decide();
      };
    });
    await finished;
  }

  async close(): Promise<void> {
    this.tabs?.close();
    this.db.close();
  }
}
