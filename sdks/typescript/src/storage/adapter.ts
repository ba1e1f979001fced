/**
 * The one seam between the SDK and a device's storage: six tables of JSON values by string key.
 *
 * Contract (every adapter; `test/storage.test.ts` runs the same suite against each):
 * - `get` returns the stored value or `undefined`; values come back as fresh copies.
 * - `list` returns every `[key, value]` of a table whose key starts with `prefix`, in key order
 *   (keys are ASCII, so UTF-16, UTF-8 and byte orders agree).
 * - `commit` applies all its writes atomically and durably: when it resolves they survive a crash
 *   of the app; when it rejects none of them happened. A write with `value: undefined` deletes.
 * - `update` (optional) reads, then commits what `plan` makes of the values read, as `commit`
 *   does, in one transaction: no other commit, from any tab, lands between its reads and its
 *   writes. `plan` runs synchronously; when it throws, nothing is written and `update` rejects
 *   with its error. Its writes stay within `STORE_TABLES`.
 * - One `LocalStore` drives an adapter at a time and serialises its calls itself, so adapters
 *   need no locking of their own. The upload queue (src/upload-queue.ts) alone uses `uploads`,
 *   beside it. An adapter shared by several tabs offers `tabs`: the
 *   `LocalStore` of each tab then runs its operations under `tabs.exclusive`.
 */

import type { Tabs } from "./tabs.js";

export type Table = "meta" | "server" | "docs" | "outbox" | "rejected" | "uploads";

export const TABLES: readonly Table[] = ["meta", "server", "docs", "outbox", "rejected", "uploads"];

/** The tables of the `LocalStore` (all but the upload queue's). */
export const STORE_TABLES: readonly Table[] = ["meta", "server", "docs", "outbox", "rejected"];

export interface Write {
  table: Table;
  key: string;
  value: unknown;
}

/** A `[table, key]` an `update` reads before it writes. */
export type Read = readonly [Table, string];

export interface StorageAdapter {
  get(table: Table, key: string): Promise<unknown>;
  /** Optional: `get` of each of `keys`, in order, at once (IndexedDB: one transaction instead of one per key). */
  getMany?(table: Table, keys: readonly string[]): Promise<unknown[]>;
  list(table: Table, prefix?: string): Promise<[string, unknown][]>;
  commit(writes: readonly Write[]): Promise<void>;
  /**
   * Optional: read `reads` and commit `plan(values)` in one transaction (IndexedDB: a local write
   * is one round trip to the browser, not one per read and one for the commit).
   */
  update?(reads: readonly Read[], plan: (values: unknown[]) => readonly Write[]): Promise<void>;
  close(): Promise<void>;
  /** Present when other tabs may open the same storage (src/storage/tabs.ts). */
  readonly tabs?: Tabs | undefined;
}
