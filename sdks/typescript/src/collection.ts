/**
 * `client.collection(name)`: reads, writes and live queries on the local view. Every call is
 * answered by the device's storage, online or offline; a write resolves once it and its outbox
 * entry are committed there, and the background sync delivers it later.
 */

import type { JsonObject, Op } from "./document.js";
import type { ClientEvents, Emitter } from "./events.js";
import type { Document, LocalStore } from "./local-store.js";
import { checkCollection, checkDocId, checkWrite } from "./mutation.js";
import type { Limits } from "./mutation.js";
import { buildQuery, matches, runQuery } from "./query.js";
import type { Where } from "./query.js";

export interface QueryOptions {
  where?: Where;
  /** `field` or `-field` (descending); ties are ordered by id. */
  orderBy?: string;
  limit?: number;
}

export class Collection {
  readonly name: string;

  constructor(
    name: string,
    private readonly store: LocalStore,
    private readonly events: Emitter<ClientEvents>,
    private readonly onWrite: () => void,
    private readonly limits: Limits,
  ) {
    this.name = checkCollection(name);
  }

  private async write(id: string, op: Op, data: JsonObject | null): Promise<Document | null> {
    checkDocId(id);
    checkWrite(op, data, this.limits);
    const { view } = await this.store.write(this.name, id, op, data);
    this.events.emit("changed", new Set([this.name]));
    this.onWrite();
    return view;
  }

  /** The document as this device sees it (`null` when missing or deleted). */
  get(id: string): Promise<Document | null> {
    return this.store.get(this.name, id);
  }

  /** Replace the document (create it if missing). */
  async set(id: string, data: JsonObject): Promise<Document> {
    return (await this.write(id, "set", data)) as Document;
  }

  /** Write the fields of `data` (`null` removes a field); others are untouched. */
  patch(id: string, data: JsonObject): Promise<Document | null> {
    return this.write(id, "patch", data);
  }

  /** Delete the document (a tombstone that syncs like any write). */
  async delete(id: string): Promise<void> {
    await this.write(id, "delete", null);
  }

  /** Add to counter fields; concurrent increments on other devices all count. */
  increment(id: string, amounts: Record<string, number>): Promise<Document | null> {
    return this.write(id, "increment", amounts);
  }

  /** Live documents matching every filter, in order (server semantics, docs/protocol.md#queries). */
  query(options: QueryOptions = {}): Promise<Document[]> {
    return this.store.query(buildQuery(this.name, options.where, options.orderBy, options.limit));
  }

  /**
   * Call `listener` with the query's results now and again whenever they change (local writes,
   * pulled changes, rejections). Returns the function that stops watching.
   *
   * The watch keeps the documents matching the query's filters and, on a change, reads only the
   * documents that changed and orders the set again (docs/adr/0034-shared-tabs.md): the whole
   * collection is read once, and again only when the changes are not known (another tab's).
   */
  watch(options: QueryOptions, listener: (documents: Document[]) => void): () => void {
    const query = buildQuery(this.name, options.where, options.orderBy, options.limit);
    let last = "";
    let running = Promise.resolve();
    let active = true;
    let matching: Map<string, Document> | null = null;
    let seq = 0;
    const update = async (): Promise<boolean> => {
      const delta = matching === null ? null : this.store.changesSince(this.name, seq);
      if (delta === null || matching === null) {
        const snapshot = await this.store.snapshot(query);
        matching = new Map(snapshot.docs.map((doc) => [doc.id, doc]));
        seq = snapshot.seq;
        return true;
      }
      seq = delta.seq;
      for (const [id, doc] of delta.docs) {
        if (doc !== null && matches(query, doc.data)) matching.set(id, doc);
        else matching.delete(id);
      }
      return delta.docs.size > 0;
    };
    const refresh = (): void => {
      running = running
        .then(async () => {
          if (!(await update()) || matching === null) return;
          const results = runQuery(query, matching.values());
          const text = JSON.stringify(results);
          if (active && text !== last) {
            last = text;
            listener(results);
          }
        })
        .catch((error: unknown) => {
          // Reported as uncaught, and the watch goes on (a broken chain would stop it for good).
          if (active) {
            queueMicrotask(() => {
              throw error;
            });
          }
        });
    };
    const off = this.events.on("changed", (collections) => {
      if (collections.has(this.name)) refresh();
    });
    refresh();
    return () => {
      active = false;
      off();
    };
  }
}
