/**
 * Storage in a SQLite database through a synchronous, better-sqlite3-shaped handle (React
 * Native SQLite libraries offer the same calls; under Node, pass a `better-sqlite3` Database).
 * All tables live in one `bw_kv` table of JSON text; WAL with `synchronous=FULL`, so a commit
 * that returned is on disk.
 */

import type { Read, StorageAdapter, Table, Write } from "./adapter.js";

/** The calls of a better-sqlite3 `Database` this adapter uses. */
export interface SqlDatabase {
  exec(sql: string): unknown;
  prepare(sql: string): SqlStatement;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): unknown;
}

export interface SqlStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS bw_kv (
  tbl TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (tbl, key)
) WITHOUT ROWID;`;

export class SqlStorage implements StorageAdapter {
  private readonly getRow: SqlStatement;
  private readonly listRows: SqlStatement;
  private readonly putRow: SqlStatement;
  private readonly deleteRow: SqlStatement;
  private readonly apply: (writes: readonly Write[]) => void;
  private readonly readAndApply: (reads: readonly Read[], plan: (values: unknown[]) => readonly Write[]) => void;

  constructor(private readonly db: SqlDatabase) {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec(SCHEMA);
    this.getRow = db.prepare("SELECT value FROM bw_kv WHERE tbl = ? AND key = ?");
    this.listRows = db.prepare("SELECT key, value FROM bw_kv WHERE tbl = ? AND key >= ? AND key < ? ORDER BY key");
    this.putRow = db.prepare("INSERT OR REPLACE INTO bw_kv (tbl, key, value) VALUES (?, ?, ?)");
    this.deleteRow = db.prepare("DELETE FROM bw_kv WHERE tbl = ? AND key = ?");
    const write = (writes: readonly Write[]): void => {
      for (const { table, key, value } of writes) {
        if (value === undefined) this.deleteRow.run(table, key);
        else this.putRow.run(table, key, JSON.stringify(value));
      }
    };
    this.apply = db.transaction(write);
    this.readAndApply = db.transaction((reads: readonly Read[], plan: (values: unknown[]) => readonly Write[]) => {
      write(plan(reads.map(([table, key]) => this.read(table, key))));
    });
  }

  private read(table: Table, key: string): unknown {
    const row = this.getRow.get(table, key) as { value: string } | undefined;
    return row === undefined ? undefined : JSON.parse(row.value);
  }

  async get(table: Table, key: string): Promise<unknown> {
    return this.read(table, key);
  }

  async list(table: Table, prefix = ""): Promise<[string, unknown][]> {
    // Keys are ASCII: every key with the prefix sorts below prefix + U+FFFF.
    const rows = this.listRows.all(table, prefix, `${prefix}\uffff`) as { key: string; value: string }[];
    return rows.map((row) => [row.key, JSON.parse(row.value)]);
  }

  async commit(writes: readonly Write[]): Promise<void> {
    this.apply(writes);
  }

  async update(reads: readonly Read[], plan: (values: unknown[]) => readonly Write[]): Promise<void> {
    this.readAndApply(reads, plan);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
