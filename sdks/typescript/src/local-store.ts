/**
 * The device's durable state over a `StorageAdapter`: server states, the local view, the
 * outbox, cursor, stable vector and clock (the Python SDK's `local_store.py`, same rules).
 *
 * Tables: `server` (each document's replicated state as the server last sent it, and whether a
 * running full resync has seen it), `docs` (the local view where it differs from `server`: the
 * documents with outbox entries; docs/adr/0048-view-rows-for-pending-documents.md), `outbox` (by
 * position), `rejected`, `meta`. A document without a `docs` row shows its server state, so a
 * pulled document is one row written, not two. Every method runs alone (one queue), and commits
 * what it changed in one adapter commit, so a local write, its outbox entry and the clock's new
 * stamp survive a crash together or not at all.
 */

import { isLegacy } from "./counter.js";
import type { Position } from "./counter.js";
import { decodeCursor, encodeCursor, mergeVectors } from "./cursor.js";
import type { VersionVector } from "./cursor.js";
import { deltaFor, emptyState, join } from "./document.js";
import type { JsonObject, Op, State } from "./document.js";
import { StaleState } from "./errors.js";
import type { Problem } from "./errors.js";
import { HybridClock } from "./hlc.js";
import type { OutboxEntry, Rejection } from "./outbox.js";
import { matches, runQuery } from "./query.js";
import type { Query } from "./query.js";
import { rebase, viewOf } from "./rebase.js";
import { offerFor } from "./restore-offers.js";
import type { Read, StorageAdapter, Table, Write } from "./storage/adapter.js";
import type { Tabs } from "./storage/tabs.js";

/** A document as the device sees it; `pending` while local edits are not yet settled. */
export interface Document {
  readonly collection: string;
  readonly id: string;
  readonly data: JsonObject;
  readonly hlc: string;
  readonly pending: boolean;
}

/** A pulled change (docs/protocol.md#pull, with `include_state=true`). */
export interface PulledChange {
  collection: string;
  id: string;
  op: string;
  hlc?: string;
  state?: State;
}

interface ServerRow {
  state: State;
  seen: boolean;
}

interface ViewRow {
  data: JsonObject | null;
  hlc: string;
  pending: boolean;
}

/** A staged page of synced changes: what `LocalStore` takes as its own once the page commits. */
interface StagedPage {
  latest: ReadonlyMap<string, State | null>;
  touched: ReadonlySet<string>;
  cursor: string;
  stable: VersionVector;
  resyncing: boolean;
  done: boolean;
  outbox: OutboxEntry[];
}

/** A pulled change of a document the user may not read (any more): it leaves the device. */
const REMOVAL_OP = "remove";

const docKey = (collection: string, id: string): string => `${collection}/${id}`;
const positionKey = (position: number): string => String(position).padStart(15, "0");

/** An operation waiting its turn; `run` settles the caller's promise and never rejects. */
interface Waiting {
  run: () => Promise<void>;
  fail: (error: unknown) => void;
  /** It does its reads and its commit in one `update`, which checks the generation itself: no cross-tab lock needed. */
  alone: boolean;
}

/** What an operation commits: its writes, and the local views they change (for live queries). */
interface Staged {
  writes: readonly Write[];
  views: ReadonlyMap<string, ViewRow | undefined>;
}

/** Runs of an operation whose commit another tab's overtook (`StaleState`), before the caller gets the error. */
const ATTEMPTS = 8;

/** Operations one tab runs under one grant of the cross-tab lock before it lets others in. */
const OPERATIONS_PER_GRANT = 64;

/** Commits (and their local-view rows, in all) remembered for live queries; a watch further behind reads its query again. */
const JOURNAL_LENGTH = 256;
const JOURNAL_ROWS = 8192;

/** Counters in `server` hold folded bases (docs/adr/0019-compact-counters.md). */
const COUNTER_FORMAT = 2;

/** The view of a document with no `docs` row: its server state as it is (no pending writes). */
function serverView(row: ServerRow): ViewRow {
  return { ...viewOf(row.state), pending: false };
}

const toDocument = (collection: string, id: string, row: ViewRow | undefined): Document | null =>
  row?.data ? { collection, id, data: row.data, hlc: row.hlc, pending: row.pending } : null;

/** Writes staged by one operation, read back through before they are committed. */
class Batch {
  readonly writes = new Map<string, Write>();
  /** The local views this operation changed (`undefined`: gone), for live queries. */
  readonly views = new Map<string, ViewRow | undefined>();
  /** Stored values read ahead (`prefetch`), by the same key as `writes`. */
  private readonly read = new Map<string, unknown>();

  constructor(private readonly adapter: StorageAdapter) {}

  put(table: Table, key: string, value: unknown): void {
    this.writes.set(`${table}\u0000${key}`, { table, key, value });
  }

  /**
   * Read `keys` all at once (a pulled page's documents: one round of reads, not one per change),
   * but those `absent` says are not stored.
   */
  async prefetch(table: Table, keys: readonly string[], absent: (key: string) => boolean = () => false): Promise<void> {
    for (const key of keys) this.read.set(`${table}\u0000${key}`, undefined);
    const stored = keys.filter((key) => !absent(key));
    if (stored.length === 0) return; // no transaction for nothing
    const values = this.adapter.getMany ? await this.adapter.getMany(table, stored) : await Promise.all(stored.map((key) => this.adapter.get(table, key)));
    stored.forEach((key, i) => this.read.set(`${table}\u0000${key}`, values[i]));
  }

  async get(table: Table, key: string): Promise<unknown> {
    const id = `${table}\u0000${key}`;
    const staged = this.writes.get(id);
    if (staged !== undefined) return staged.value;
    return this.read.has(id) ? this.read.get(id) : this.adapter.get(table, key);
  }
}

export class LocalStore {
  deviceId = "";
  cursor = "";
  stable: VersionVector = {};
  resyncing = false;
  /** The running resync follows a restore of the node: offer back what it lost (src/restore-offers.ts). */
  offering = false;
  /** The collections the cursor is pulled with (sorted; `null`: all), as `follow` stored them. */
  private scope: readonly string[] | null = null;
  clock: HybridClock = new HybridClock("d-unset");
  private counter = 0;
  /** The stored `generation` this object's cached state matches (each commit bumps it). */
  private generation = -1;
  private outbox: OutboxEntry[] = [];
  /** The local-view rows each commit of this object wrote (`undefined`: deleted), oldest first (for live queries). */
  private journal: { seq: number; rows: ReadonlyMap<string, ViewRow | undefined> }[] = [];
  private journalRows = 0;
  private seq = 0;
  /** Changes up to this sequence are not in the journal (trimmed, or another tab's). */
  private forgotten = 0;
  /**
   * Until the device's first sync has caught up (it never pulled before): every key `server`
   * holds, so a first sync reads nothing for the documents it has not stored yet (no state, and
   * no `docs` row but for documents with outbox entries). `null` otherwise.
   */
  private firstSync: Set<string> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** Operations waiting for the cross-tab lock (storage shared between tabs). */
  private waiting: Waiting[] = [];
  private draining = false;

  constructor(
    private readonly adapter: StorageAdapter,
    private readonly physicalMs: () => number = Date.now,
    private readonly randomId: () => string = () => crypto.randomUUID().replaceAll("-", "").slice(0, 12),
  ) {}

  /**
   * Run `fn` after every earlier call has finished (one operation at a time). With storage
   * shared between tabs, also after every other tab's, on this tab's state refreshed first; but
   * an operation `alone` (one `update`: a local write) takes no cross-tab lock, its transaction
   * checking the generation instead.
   */
  private serial<T>(fn: () => Promise<T>, alone = false): Promise<T> {
    const tabs = this.adapter.tabs;
    if (tabs === undefined) {
      const result = this.queue.then(() => this.attempt(fn));
      this.queue = result.catch(() => undefined);
      return result;
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ run: () => this.attempt(fn).then(resolve, reject), fail: reject, alone: alone && this.adapter.update !== undefined });
      if (!this.draining) {
        this.draining = true;
        void this.drain(tabs);
      }
    });
  }

  /**
   * Run the waiting operations, several under one grant of the cross-tab lock (taking the lock
   * costs a round trip to the browser), at most `OPERATIONS_PER_GRANT` so other tabs get a turn.
   */
  private async drain(tabs: Tabs): Promise<void> {
    while (this.waiting.length > 0) {
      if ((this.waiting[0] as Waiting).alone) {
        await (this.waiting.shift() as Waiting).run();
        continue;
      }
      try {
        await tabs.exclusive(async () => {
          await this.catchUp();
          for (let n = 0; n < OPERATIONS_PER_GRANT && this.waiting.length > 0; n++) await (this.waiting.shift() as Waiting).run();
        });
      } catch (error) {
        for (const operation of this.waiting.splice(0, OPERATIONS_PER_GRANT)) operation.fail(error); // no lock or no state: fail those due
      }
    }
    this.draining = false;
  }

  /** Run `fn`, and again on reloaded state while another tab's commit made its commit stale. */
  private async attempt<T>(fn: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await fn();
      } catch (error) {
        if (!(error instanceof StaleState) || n === ATTEMPTS) throw error;
        await this.load();
      }
    }
  }

  private async meta<T>(key: string, fallback: T): Promise<T> {
    const value = await this.adapter.get("meta", key);
    return value === undefined ? fallback : (value as T);
  }

  /** Load (creating when new) the device id, clock, cursor and outbox. */
  open(): Promise<void> {
    return this.serial(async () => {
      this.generation = await this.meta("generation", 0);
      this.deviceId = await this.meta("device_id", "");
      if (!this.deviceId) {
        this.deviceId = this.randomId();
        await this.commit([{ table: "meta", key: "device_id", value: this.deviceId }]);
      }
      await this.load();
      if ((await this.meta("counter_format", 1)) !== COUNTER_FORMAT) await this.forgetUnfoldedCounters();
    });
  }

  /** Read the cached state (all but the device id) from storage. */
  private async load(): Promise<void> {
    this.generation = await this.meta("generation", 0);
    this.counter = await this.meta("counter", 0);
    this.clock = new HybridClock(`d-${this.deviceId}`, this.physicalMs, await this.meta("clock_offset_ms", 0));
    const last = await this.meta("hlc", "");
    if (last) this.clock.observe(last);
    this.cursor = await this.meta("cursor", "");
    this.stable = await this.meta("stable", {});
    this.resyncing = await this.meta("resyncing", false);
    this.firstSync = this.cursor === "" && !this.resyncing ? new Set() : null;
    this.offering = await this.meta("offering", false);
    this.scope = await this.meta<string[] | null>("scope", null);
    this.outbox = (await this.adapter.list("outbox")).map(([, entry]) => entry as OutboxEntry);
    this.forget(); // whatever changed before is unknown here
  }

  private forget(): void {
    this.journal = [];
    this.journalRows = 0;
    this.forgotten = ++this.seq;
  }

  /** Reload the cached state if another tab committed since this one last did (shared storage). */
  private async catchUp(): Promise<void> {
    if (this.deviceId && (await this.meta("generation", 0)) !== this.generation) await this.load();
  }

  /**
   * Commit `writes` with the next generation, so that other tabs see their cache is stale, and
   * journal `views`, the local views they changed.
   */
  private commit(writes: readonly Write[], views: ReadonlyMap<string, ViewRow | undefined> = new Map()): Promise<void> {
    return this.transact([], () => ({ writes, views }));
  }

  /**
   * Read `reads` and commit what `plan` stages from their values, with the next generation, in
   * one transaction where the adapter has `update`; `StaleState` when the stored generation is
   * not the one this tab's state was read at (another tab committed: with `update`, local writes
   * take no cross-tab lock, so every commit checks). Journals the staged views.
   */
  private async transact(reads: readonly Read[], plan: (values: unknown[]) => Staged): Promise<void> {
    const generation = this.generation + 1;
    let staged = null as Staged | null;
    const decide = ([stored, ...values]: unknown[]): readonly Write[] => {
      if ((stored ?? 0) !== this.generation) return []; // another tab committed since this tab read its state
      staged = plan(values);
      return [...staged.writes, { table: "meta", key: "generation", value: generation }];
    };
    const all: Read[] = [["meta", "generation"], ...reads];
    if (this.adapter.update) await this.adapter.update(all, decide);
    else await this.adapter.commit(decide(await Promise.all(all.map(([table, key]) => this.adapter.get(table, key)))));
    if (staged === null) throw new StaleState();
    this.generation = generation;
    const rows = new Map((staged as Staged).views);
    if (rows.size === 0) return;
    this.journal.push({ seq: ++this.seq, rows });
    this.journalRows += rows.size;
    while (this.journal.length > 1 && (this.journal.length > JOURNAL_LENGTH || this.journalRows > JOURNAL_ROWS)) {
      const oldest = this.journal.shift() as { seq: number; rows: ReadonlyMap<string, unknown> };
      this.journalRows -= oldest.rows.size;
      this.forgotten = oldest.seq;
    }
  }

  /** Catch up with what other tabs sharing the storage committed (after their notice). */
  refresh(): Promise<void> {
    return this.serial(async () => undefined);
  }

  /**
   * Drop server states whose counters predate folding and pull everything again: they keep
   * increments by mutation id that the node has since folded into a base, so joined with the
   * node's new state they would count twice. The local view stays until the resync brings the
   * state back; the outbox keeps every entry.
   */
  private async forgetUnfoldedCounters(): Promise<void> {
    const writes: Write[] = [{ table: "meta", key: "counter_format", value: COUNTER_FORMAT }];
    for (const [key, value] of await this.adapter.list("server")) {
      if (!Object.values((value as ServerRow).state.n).some(isLegacy)) continue;
      writes.push({ table: "server", key, value: undefined });
      // The view shows the server state while no `docs` row exists: keep it in one until the resync brings the state back.
      if ((await this.adapter.get("docs", key)) === undefined) writes.push({ table: "docs", key, value: serverView(value as ServerRow) });
    }
    if (writes.length > 1 && this.cursor) await this.startResync(writes);
    else await this.commit(writes);
  }

  close(): Promise<void> {
    return this.serial(() => this.adapter.close());
  }

  /** A stored setting of the SDK (the signed-in session), or `undefined`. */
  getMeta<T>(key: string): Promise<T | undefined> {
    return this.serial(async () => (await this.adapter.get("meta", key)) as T | undefined);
  }

  /** Store (or, with `undefined`/`null`, forget) a setting, durably. */
  putMeta(key: string, value: unknown): Promise<void> {
    return this.serial(() => this.commit([{ table: "meta", key, value: value ?? undefined }]));
  }

  // -- local writes and reads ---------------------------------------------------------------

  /** Apply a local mutation and queue it, durably, in one commit. */
  /**
   * Apply a local mutation and queue it, durably, in one commit: its reads (the document's
   * server state, the last outbox position) inside that commit's transaction, and without the
   * cross-tab lock (the transaction checks no other tab committed since this tab's state was
   * read), so a write is one round trip to the storage (docs/adr/0048-view-rows-for-pending-documents.md).
   */
  write(collection: string, id: string, op: Op, data: JsonObject | null): Promise<{ view: Document | null; entry: OutboxEntry }> {
    return this.serial(async () => {
      const counter = this.counter + 1;
      const hlc = this.clock.now();
      const key = docKey(collection, id);
      let done = null as { view: Document | null; entry: OutboxEntry; outbox: OutboxEntry[] } | null;
      await this.transact([["meta", "last_position"], ["server", key]], ([lastPosition, server]) => {
        const position = (this.outbox.at(-1)?.position ?? ((lastPosition as number | undefined) ?? 0)) + 1;
        const entry: OutboxEntry = {
          position,
          mutationId: `${this.deviceId}.${counter}`,
          collection,
          id,
          op,
          data: data === null ? null : structuredClone(data),
          hlc,
          origin: null,
          seq: null,
        };
        const outbox = [...this.outbox, entry];
        const row = pendingView(outbox, collection, id, server as ServerRow | undefined) as ViewRow; // it has `entry`
        done = { view: toDocument(collection, id, row), entry, outbox };
        const writes: Write[] = [
          { table: "meta", key: "counter", value: counter },
          { table: "meta", key: "hlc", value: hlc },
          { table: "meta", key: "last_position", value: position },
          { table: "outbox", key: positionKey(position), value: entry },
          { table: "docs", key, value: row },
        ];
        return { writes, views: new Map([[key, row]]) };
      });
      const { view, entry, outbox } = done as unknown as { view: Document | null; entry: OutboxEntry; outbox: OutboxEntry[] };
      this.counter = counter;
      this.outbox = outbox;
      return { view, entry };
    }, true);
  }

  /** The local view of one document (`null` when missing or deleted). */
  get(collection: string, id: string): Promise<Document | null> {
    return this.serial(async () => {
      const key = docKey(collection, id);
      const [view, server] = (await Promise.all([this.adapter.get("docs", key), this.adapter.get("server", key)])) as [ViewRow | undefined, ServerRow | undefined];
      return toDocument(collection, id, view ?? (server && serverView(server)));
    });
  }

  /** Live documents of the local view matching `query`, in its order. */
  query(query: Query): Promise<Document[]> {
    return this.serial(async () => runQuery(query, await this.liveDocuments(query.collection)));
  }

  /** The local view of `collection` in key order: its `docs` rows, and its server states where it has none. */
  private async liveDocuments(collection: string): Promise<Document[]> {
    const prefix = `${collection}/`;
    const [servers, views] = await Promise.all([this.adapter.list("server", prefix), this.adapter.list("docs", prefix)]);
    const docs: Document[] = [];
    const add = (key: string, row: ViewRow): void => {
      const doc = toDocument(collection, key.slice(prefix.length), row);
      if (doc !== null) docs.push(doc);
    };
    let v = 0; // both lists are in key order: merge them, a `docs` row standing for the server state of its key
    for (const [key, value] of servers) {
      for (; v < views.length && (views[v] as [string, unknown])[0] < key; v++) add(...(views[v] as [string, ViewRow]));
      if (v < views.length && (views[v] as [string, unknown])[0] === key) add(...(views[v++] as [string, ViewRow]));
      else add(key, serverView(value as ServerRow));
    }
    for (; v < views.length; v++) add(...(views[v] as [string, ViewRow]));
    return docs;
  }

  /** Every live document of `collection` matching `query`'s filters, and the change sequence they are current at. */
  snapshot(query: Query): Promise<{ seq: number; docs: Document[] }> {
    return this.serial(async () => ({ seq: this.seq, docs: (await this.liveDocuments(query.collection)).filter((doc) => matches(query, doc.data)) }));
  }

  /**
   * The documents of `collection` whose local view changed after sequence `seq`, as they are now
   * (`null`: gone), and the sequence that is current at; `null` when those changes are not known
   * (another tab's, or too long ago): read the query again with `snapshot`. Answered from the
   * journal of this object's commits, without the storage or the cross-tab lock: a live query's
   * update costs no round trip (docs/benchmarks.md, "TypeScript SDK in Chromium").
   */
  changesSince(collection: string, seq: number): { seq: number; docs: Map<string, Document | null> } | null {
    if (seq < this.forgotten) return null;
    const prefix = `${collection}/`;
    const docs = new Map<string, Document | null>();
    for (const entry of this.journal) {
      if (entry.seq <= seq) continue;
      for (const [key, row] of entry.rows) {
        if (!key.startsWith(prefix)) continue;
        const id = key.slice(prefix.length);
        docs.set(id, toDocument(collection, id, row));
      }
    }
    return { seq: this.seq, docs };
  }

  /**
   * Recompute one document's view from its server state and its outbox entries (staged): a
   * `docs` row while it has entries, none (its server state shows) once it has none.
   */
  private async refreshView(batch: Batch, outbox: readonly OutboxEntry[], collection: string, id: string): Promise<Document | null> {
    const key = docKey(collection, id);
    const server = (await batch.get("server", key)) as ServerRow | undefined;
    const row = pendingView(outbox, collection, id, server);
    if (row !== null) batch.put("docs", key, row);
    else if ((await batch.get("docs", key)) !== undefined) batch.put("docs", key, undefined);
    const view = row ?? (server && serverView(server));
    batch.views.set(key, view);
    return toDocument(collection, id, view);
  }

  // -- the outbox ---------------------------------------------------------------------------

  /** The oldest `limit` entries not yet acknowledged, in write order. */
  unsent(limit: number): OutboxEntry[] {
    return this.outbox.filter((e) => e.origin === null).slice(0, limit);
  }

  /** Every entry still in the outbox (acknowledged but not stable ones included). */
  entries(): readonly OutboxEntry[] {
    return this.outbox;
  }

  /** Move refused entries to `rejected` and roll their documents back. */
  reject(refused: readonly (readonly [string, Problem])[]): Promise<Rejection[]> {
    return this.serial(async () => {
      const problems = new Map(refused);
      const gone = this.outbox.filter((e) => problems.has(e.mutationId));
      const outbox = this.outbox.filter((e) => !problems.has(e.mutationId));
      const batch = new Batch(this.adapter);
      const rejections: Rejection[] = [];
      for (const e of gone) {
        const rejection: Rejection = { mutationId: e.mutationId, collection: e.collection, id: e.id, op: e.op, data: e.data, problem: problems.get(e.mutationId) as Problem };
        batch.put("rejected", positionKey(e.position), rejection);
        batch.put("outbox", positionKey(e.position), undefined);
        rejections.push(rejection);
      }
      for (const e of gone) await this.refreshView(batch, outbox, e.collection, e.id);
      await this.commit([...batch.writes.values()], batch.views);
      this.outbox = outbox;
      return rejections;
    });
  }

  /** Every mutation the server refused, oldest first. */
  async rejections(): Promise<Rejection[]> {
    return (await this.adapter.list("rejected")).map(([, value]) => value as Rejection);
  }

  /** Treat acknowledged-but-unstable entries as unsent (after failing over: re-push them). */
  forgetAcks(): Promise<void> {
    return this.serial(async () => {
      const outbox = this.outbox.map((e) => ({ ...e, origin: null, seq: null }));
      await this.commit(outbox.map((e) => ({ table: "outbox", key: positionKey(e.position), value: e })));
      this.outbox = outbox;
    });
  }

  /** Correct the clock to a node's and re-stamp every unsent entry (after `clock_skew`). */
  restamp(nodeStamp: string): Promise<number> {
    return this.serial(async () => {
      this.clock.correct(nodeStamp);
      const outbox = this.outbox.map((e) => (e.origin === null ? { ...e, hlc: this.clock.now() } : e));
      const batch = new Batch(this.adapter);
      const changed = outbox.filter((e) => e.origin === null);
      for (const e of changed) batch.put("outbox", positionKey(e.position), e);
      batch.put("meta", "clock_offset_ms", this.clock.offsetMs);
      batch.put("meta", "hlc", this.clock.now());
      for (const key of new Set(changed.map((e) => docKey(e.collection, e.id)))) {
        const [collection, id] = splitKey(key);
        await this.refreshView(batch, outbox, collection, id);
      }
      await this.commit([...batch.writes.values()], batch.views);
      this.outbox = outbox;
      return changed.length;
    });
  }

  // -- pulled changes -----------------------------------------------------------------------

  /**
   * Join a pulled page into the server states, move the cursor and settle the outbox, in one
   * commit (a crash mid-sync resumes from this page's cursor). `done` (no more pages) ends a
   * running resync. Returns the collections whose local view changed.
   */
  applyPage(changes: readonly PulledChange[], cursor: string, stable: VersionVector, done: boolean): Promise<Set<string>> {
    return this.serial(async () => {
      const batch = new Batch(this.adapter);
      const page = await this.stagePage(batch, this.outbox, changes, cursor, stable, done);
      await this.commit([...batch.writes.values()], batch.views);
      return this.adopt(page);
    });
  }

  /**
   * Remember `[mutationId, origin, seq]` for acknowledged entries (they stay queued), and with
   * the push answer's `states` (by mutation id) and `stable`, take in the acknowledged changes
   * that follow the cursor without a gap as their pull would (docs/protocol.md#settling-a-write-
   * from-the-push-answer-every-sdk): states joined (collections in scope), cursor moved,
   * `stable` merged, settled entries out, all in one commit. A change behind a gap, or without
   * a state (`duplicate`), is only recorded: the device pulls it. For the mutation ids in
   * `derive` the node sent no state: the change's state is the entry's own delta
   * (docs/protocol.md#push-over-the-realtime-websocket). Returns the collections whose local
   * view changed.
   */
  recordAcks(
    acks: readonly (readonly [string, string, number])[],
    states: ReadonlyMap<string, State> = new Map(),
    stable: VersionVector = {},
    derive: ReadonlySet<string> = new Set(),
  ): Promise<Set<string>> {
    return this.serial(async () => {
      const byId = new Map(acks.map(([mid, origin, seq]) => [mid, { origin, seq }]));
      const outbox = this.outbox.map((e) => {
        const ack = byId.get(e.mutationId);
        return ack ? { ...e, ...ack } : e;
      });
      const batch = new Batch(this.adapter);
      for (const e of outbox) if (byId.has(e.mutationId)) batch.put("outbox", positionKey(e.position), e);
      const next = this.resyncing ? null : this.nextChanges(outbox, acks, states, derive);
      if (next === null || (next.cursor === this.cursor && Object.keys(stable).length === 0)) {
        // Nothing to take in (a resync runs, or every result lies behind a gap): recorded only.
        await this.commit([...batch.writes.values()], batch.views);
        this.outbox = outbox;
        return new Set<string>();
      }
      const page = await this.stagePage(batch, outbox, next.changes, next.cursor, stable, false);
      await this.commit([...batch.writes.values()], batch.views);
      return this.adopt(page);
    });
  }

  /**
   * The cursor moved past the acknowledged changes that follow it without a gap (each with a
   * state), and those changes as a pull would bring them: one outside the device's scope moves
   * the cursor only, as in a pull.
   */
  private nextChanges(
    outbox: readonly OutboxEntry[],
    acks: readonly (readonly [string, string, number])[],
    states: ReadonlyMap<string, State>,
    derive: ReadonlySet<string>,
  ): { cursor: string; changes: PulledChange[] } {
    const vector = decodeCursor(this.cursor);
    let moved = false;
    const entries = new Map(outbox.map((e) => [e.mutationId, e]));
    const changes: PulledChange[] = [];
    /** Each document's state as this page has it so far (a page keeps a document's last state). */
    const taken = new Map<string, State>();
    for (const [mid, origin, seq] of [...acks].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : a[2] - b[2]))) {
      let state = states.get(mid);
      const entry = entries.get(mid);
      if ((state === undefined && !derive.has(mid)) || entry === undefined || (vector[origin] ?? 0) !== seq - 1) continue;
      const key = docKey(entry.collection, entry.id);
      // The node's state is the one before joined with this delta (it said so): joined into the
      // device's server state, with this page's earlier changes of the document, it is what a pull would bring.
      state ??= join(taken.get(key) ?? emptyState(), deltaFor(entry.op, entry.data, entry.hlc, mid));
      taken.set(key, state);
      vector[origin] = seq;
      moved = true;
      if (this.scope === null || this.scope.includes(entry.collection)) changes.push({ collection: entry.collection, id: entry.id, op: entry.op, state });
    }
    return { cursor: moved ? encodeCursor(vector) : this.cursor, changes };
  }

  /**
   * Stage a page of synced changes (pulled, or taken from a push answer) over `outbox` in
   * `batch`: states joined, cursor and `stable` written, settled entries out, views refreshed.
   * What the caller adopts once `batch` commits.
   */
  private async stagePage(batch: Batch, base: readonly OutboxEntry[], changes: readonly PulledChange[], cursor: string, stable: VersionVector, done: boolean): Promise<StagedPage> {
    const latest = new Map<string, State | null>();
    for (const change of changes) {
      const key = docKey(change.collection, change.id);
      if (change.op === REMOVAL_OP) {
        latest.set(key, null);
        continue;
      }
      if (change.state === undefined) throw new Error("pulled change without state (pull with include_state=true)");
      latest.set(key, change.state);
      if (change.hlc) this.clock.observe(change.hlc);
    }
    const touched = new Set(latest.keys());
    const offers = new Offers(this.offering, base.at(-1)?.position ?? (await this.meta("last_position", 0)));
    // The page's `docs` rows too (few: a document has one only while it has outbox entries), read beside the states.
    const stored = this.firstSync;
    const queued = new Set(base.map((e) => docKey(e.collection, e.id)));
    await Promise.all([
      batch.prefetch("server", [...latest.keys()], (key) => stored !== null && !stored.has(key)),
      batch.prefetch("docs", [...latest.keys()], (key) => stored !== null && !queued.has(key)),
    ]);
    for (const [key, incoming] of latest) {
      if (incoming === null) {
        batch.put("server", key, undefined);
        continue;
      }
      // A full resync replaces what the device held before it (the device may hold changes no
      // region has: a node restored from a backup, a lost store, ADR 0037) and joins what the
      // resync itself brought, as the Python SDK does (docs/protocol.md#cursors).
      const current = (await batch.get("server", key)) as ServerRow | undefined;
      await offers.consider(key, current, incoming);
      const held = current && (current.seen || !this.resyncing) ? current.state : undefined;
      batch.put("server", key, { state: held ? join(held, incoming) : incoming, seen: true });
    }
    const newStable = mergeVectors(this.stable, stable);
    batch.put("meta", "cursor", cursor);
    batch.put("meta", "stable", newStable);
    batch.put("meta", "hlc", this.clock.now());
    let resyncing = this.resyncing;
    if (done && resyncing) {
      for (const [key, value] of await this.adapter.list("server")) {
        if (!(value as ServerRow).seen && !latest.has(key)) {
          await offers.consider(key, value as ServerRow, null); // lost by a restore: offered back first
          batch.put("server", key, undefined); // purged while this device was away
          touched.add(key);
        }
      }
      resyncing = false;
      batch.put("meta", "resyncing", false);
      batch.put("meta", "offering", undefined);
    }
    const offered = offers.entries.filter((o) => !base.some((e) => e.mutationId === o.mutationId));
    for (const entry of offered) {
      batch.put("outbox", positionKey(entry.position), entry);
      batch.put("meta", "last_position", entry.position);
      touched.add(docKey(entry.collection, entry.id));
    }
    const outbox = settle([...base, ...offered], newStable, decodeCursor(cursor));
    for (const e of base) {
      if (!outbox.includes(e)) {
        batch.put("outbox", positionKey(e.position), undefined);
        touched.add(docKey(e.collection, e.id));
      }
    }
    for (const key of touched) {
      const [collection, id] = splitKey(key);
      await this.refreshView(batch, outbox, collection, id);
    }
    return { latest, touched, cursor, stable: newStable, resyncing, done, outbox };
  }

  /** Take a committed page's state as this object's own; the collections whose local view changed. */
  private adopt(page: StagedPage): Set<string> {
    this.cursor = page.cursor;
    this.stable = page.stable;
    const stored = this.firstSync;
    for (const [key, incoming] of page.latest) stored?.[incoming === null ? "delete" : "add"](key);
    if (page.done) this.firstSync = null;
    this.resyncing = page.resyncing;
    this.offering &&= page.resyncing;
    this.outbox = page.outbox;
    return new Set([...page.touched].map((key) => splitKey(key)[0]));
  }

  /**
   * Make the stored cursor belong to `scope` (sorted collection names, `null`: all); whether that
   * started a full resync. A cursor skips for good the collections it was not pulled with
   * (docs/protocol.md#cursors), so a device synced with another scope starts over, keeping its
   * outbox; documents the new scope does not bring back leave when that resync completes.
   */
  follow(scope: readonly string[] | null): Promise<boolean> {
    return this.serial(async () => {
      const stored = (await this.adapter.get("meta", "scope")) as string[] | null | undefined;
      if (JSON.stringify(stored ?? null) === JSON.stringify(scope)) return false;
      const scopeWrite: Write = { table: "meta", key: "scope", value: scope ?? undefined };
      const resync = this.cursor !== "";
      if (resync) await this.startResync([scopeWrite]);
      else await this.commit([scopeWrite]); // nothing pulled yet (or a resync under way)
      this.scope = scope;
      return resync;
    });
  }

  /** Start over from an empty cursor (`410` on the cursor), keeping the outbox; `offer`: the node was restored, offer back what it lost. */
  beginResync(offer = false): Promise<void> {
    return this.serial(() => this.startResync([], offer));
  }

  /**
   * Mark every server document unseen (but those `writes` rewrites), empty the cursor and forget
   * `stable` and the acknowledgements of unsettled writes, in one commit with `writes`: after a
   * restore the node may have lost a write it acknowledged, so each is pushed again (the node
   * answers `duplicate` for those it holds, I2), as the Python SDK does.
   */
  private async startResync(writes: Write[], offer = false): Promise<void> {
    const rewritten = new Set(writes.filter((w) => w.table === "server").map((w) => w.key));
    for (const [key, value] of await this.adapter.list("server")) {
      if (!rewritten.has(key)) writes.push({ table: "server", key, value: { ...(value as ServerRow), seen: false } });
    }
    const outbox = this.outbox.map((e) => (e.origin === null ? e : { ...e, origin: null, seq: null }));
    outbox.forEach((e, i) => {
      if (e !== this.outbox[i]) writes.push({ table: "outbox", key: positionKey(e.position), value: e });
    });
    writes.push(
      { table: "meta", key: "cursor", value: "" },
      { table: "meta", key: "stable", value: {} },
      { table: "meta", key: "resyncing", value: true },
      { table: "meta", key: "offering", value: offer || undefined },
    );
    await this.commit(writes);
    this.outbox = outbox;
    this.firstSync = null;
    this.cursor = "";
    this.stable = {};
    this.resyncing = true;
    this.offering = offer;
  }
}

/** The outbox entries a resync after a restore queues, for documents the node lost (src/restore-offers.ts). */
class Offers {
  readonly entries: OutboxEntry[] = [];

  constructor(
    private readonly offering: boolean,
    private position: number,
  ) {}

  /** Offer what the device held of `key` before the resync (`row` not seen yet) if the node's state (`null`: none) lacks it. */
  async consider(key: string, row: ServerRow | undefined, node: State | null): Promise<void> {
    if (!this.offering || row === undefined || row.seen) return;
    const [collection, id] = splitKey(key);
    const offer = await offerFor(collection, id, row.state, node);
    if (offer === null) return;
    this.position += 1;
    this.entries.push({ position: this.position, mutationId: offer.mutationId, collection, id, op: offer.op, data: offer.data, hlc: offer.hlc, origin: null, seq: null });
  }
}

/** The view of a document with outbox entries in `outbox` (`null`: it has none, its server state shows). */
function pendingView(outbox: readonly OutboxEntry[], collection: string, id: string, server: ServerRow | undefined): ViewRow | null {
  const pending = outbox
    .filter((e) => e.collection === collection && e.id === id)
    .map((e) => ({
      op: e.op,
      data: e.data,
      hlc: e.hlc,
      mutationId: e.mutationId,
      position: e.origin === null || e.seq === null ? null : ([e.origin, e.seq] as Position),
    }));
  return pending.length === 0 ? null : { ...viewOf(rebase(server?.state ?? null, pending)), pending: true };
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}

/**
 * The outbox without entries that are acknowledged, stable and pulled back (behind the cursor:
 * a write outside the device's scope is never pulled, so it settles there too).
 */
function settle(outbox: readonly OutboxEntry[], stable: VersionVector, pulled: VersionVector): OutboxEntry[] {
  const limit: VersionVector = {};
  for (const [origin, seq] of Object.entries(stable)) limit[origin] = Math.min(seq, pulled[origin] ?? 0);
  return outbox.filter((e) => e.origin === null || e.seq === null || e.seq > (limit[e.origin] ?? 0));
}
