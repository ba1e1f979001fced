/** Storage in memory: for tests and for apps that want no persistence (nothing survives a reload). */

import { TABLES } from "./adapter.js";
import type { Read, StorageAdapter, Table, Write } from "./adapter.js";

/** A value the caller cannot change behind the storage's back: objects copied, primitives as they are. */
function copy(value: unknown): unknown {
  return typeof value === "object" && value !== null ? structuredClone(value) : value;
}

export class MemoryStorage implements StorageAdapter {
  private readonly tables = new Map<Table, Map<string, unknown>>(TABLES.map((t) => [t, new Map()]));

  private table(name: Table): Map<string, unknown> {
    return this.tables.get(name) as Map<string, unknown>;
  }

  async get(table: Table, key: string): Promise<unknown> {
    return copy(this.table(table).get(key));
  }

  async list(table: Table, prefix = ""): Promise<[string, unknown][]> {
    return [...this.table(table)]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => [key, copy(value)]);
  }

  async commit(writes: readonly Write[]): Promise<void> {
    const copies = writes.map((w) => ({ ...w, value: copy(w.value) }));
    for (const { table, key, value } of copies) {
      if (value === undefined) this.table(table).delete(key);
      else this.table(table).set(key, value);
    }
  }

  async update(reads: readonly Read[], plan: (values: unknown[]) => readonly Write[]): Promise<void> {
    const values = reads.map(([table, key]) => copy(this.table(table).get(key)));
    await this.commit(plan(values));
  }

  async close(): Promise<void> {}
}
