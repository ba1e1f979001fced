/**
 * The one seam between the SDK and a device's storage: six tables of JSON values by string key.
 *
 * Contract (every adapter; `test/storage.test.ts` runs the same suite against each):
 * - `get` returns the stored value or `undefined`; values come back as fresh copies.
 * - `list` returns every `[key, value]` of a table whose key starts with `prefix`, in key order
 *   (keys are ASCII, so UTF-16, UTF-8 and byte orders agree).
 * - `commit` applies all its writes atomically and durably: when it resolves they survive a crash
 *   of the app; when it rejects none of them happened. A write with `value: undefined` deletes.
 * - One `LocalStore` drives an adapter at a time and serialises its calls itself, so adapters
 *   need no locking of their own. The upload queue (src/upload-queue.ts) alone uses `uploads`,
 *   beside it. An adapter shared by several tabs offers `tabs`: the
 *   `LocalStore` of each tab then runs its operations under `tabs.exclusive`.
 */

import type { Tabs } from "./tabs.js";

export type Table = "meta" | "server" | "docs" | "outbox" | "rejected" | "uploads";

export const TABLES: readonly Table[] = ["meta", "server", "docs", "outbox", "rejected", "uploads"];

export interface Write {
  table: Table;
  key: string;
  value: unknown;
}

export interface StorageAdapter {
  get(table: Table, key: string): Promise<unknown>;
  list(table: Table, prefix?: string): Promise<[string, unknown][]>;
  commit(writes: readonly Write[]): Promise<void>;
  close(): Promise<void>;
  /** Present when other tabs may open the same storage (src/storage/tabs.ts). */
  readonly tabs?: Tabs | undefined;
}
