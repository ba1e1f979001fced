/**
 * Storage in IndexedDB, the browser default: one object store per table, one `readwrite`
 * transaction with `durability: "strict"` per commit, so a commit that resolved survives a crash.
 *
 * One client per database: a second tab opening the same database would interleave its outbox
 * with the first's and lose writes, so `open` takes a Web Lock for the database's life and
 * refuses with `StorageInUse` while another tab holds it (sharing one database between tabs is
 * not there yet).
 */

import { TABLES } from "./adapter.js";
import type { StorageAdapter, Table, Write } from "./adapter.js";

const VERSION = 1;

/** The database is open in another tab or window (it holds the database's Web Lock). */
export class StorageInUse extends Error {
  constructor(name: string) {
    super(`the database ${JSON.stringify(name)} is open in another tab`);
    this.name = "StorageInUse";
  }
}

/** Hold the lock `name` until the returned function is called; refuse at once if it is held. */
function holdLock(locks: LockManager, name: string): Promise<() => void> {
  return new Promise((resolve, reject) => {
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (lock === null) return reject(new StorageInUse(name));
        return new Promise<void>((release) => resolve(release));
      })
      .catch(reject);
  });
}

function done(request: IDBRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export class IndexedDbStorage implements StorageAdapter {
  private constructor(
    private readonly db: IDBDatabase,
    private readonly keyRange: typeof IDBKeyRange,
    private readonly release: () => void,
  ) {}

  /**
   * Open (creating when new) the database `name`. `factory`, `keyRange` and `locks` default to
   * the page's globals; without a `LockManager` (old browsers) nothing guards against a second tab.
   */
  static async open(
    name: string,
    factory: IDBFactory = indexedDB,
    keyRange: typeof IDBKeyRange = IDBKeyRange,
    locks: LockManager | undefined = globalThis.navigator?.locks,
  ): Promise<IndexedDbStorage> {
    const release = locks ? await holdLock(locks, `breakwater:${name}`) : () => undefined;
    const request = factory.open(name, VERSION);
    request.onupgradeneeded = () => {
      for (const table of TABLES) {
        if (!request.result.objectStoreNames.contains(table)) request.result.createObjectStore(table);
      }
    };
    try {
      return new IndexedDbStorage((await done(request)) as IDBDatabase, keyRange, release);
    } catch (error) {
      release();
      throw error;
    }
  }

  async get(table: Table, key: string): Promise<unknown> {
    return done(this.db.transaction(table, "readonly").objectStore(table).get(key));
  }

  async list(table: Table, prefix = ""): Promise<[string, unknown][]> {
    const store = this.db.transaction(table, "readonly").objectStore(table);
    const range = this.keyRange.bound(prefix, `${prefix}\uffff`);
    const [keys, values] = await Promise.all([done(store.getAllKeys(range)), done(store.getAll(range))]);
    return (keys as string[]).map((key, i) => [key, (values as unknown[])[i]]);
  }

  async commit(writes: readonly Write[]): Promise<void> {
    if (writes.length === 0) return;
    const tables = [...new Set(writes.map((w) => w.table))];
    const tx = this.db.transaction(tables, "readwrite", { durability: "strict" });
    const finished = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    });
    for (const { table, key, value } of writes) {
      const store = tx.objectStore(table);
      if (value === undefined) store.delete(key);
      else store.put(value, key);
    }
    await finished;
  }

  async close(): Promise<void> {
    this.db.close();
    this.release();
  }
}
