/**
 * `Client`: the local store, the collections and the background sync of one device.
 *
 * Every read and write is answered by the device's storage, online or not; the sync loop
 * pushes the outbox and pulls others' changes whenever an endpoint answers.
 */

import { Auth } from "./auth.js";
import { Collection } from "./collection.js";
import { EndpointPool } from "./endpoints.js";
import { ClientClosed, ValidationError } from "./errors.js";
import { Emitter } from "./events.js";
import type { ClientEvents, Status } from "./events.js";
import { LocalStore } from "./local-store.js";
import { checkCollection, DEFAULT_LIMITS } from "./mutation.js";
import type { Limits } from "./mutation.js";
import type { Fetch, HeadersProvider } from "./node-api.js";
import type { OutboxEntry, Rejection } from "./outbox.js";
import type { StorageAdapter } from "./storage/adapter.js";
import { LongPollTransport } from "./realtime/long-poll.js";
import { SseTransport } from "./realtime/sse.js";
import type { Transport, TransportName, WebSocketConstructor } from "./realtime/transport.js";
import { WebSocketTransport } from "./realtime/websocket.js";
import { SyncLoop } from "./sync.js";
import { joinTabs } from "./tab-sharing.js";
import { UploadQueue } from "./upload-queue.js";
import type { UploadOptions } from "./upload-queue.js";
import type { TabMembership } from "./tab-sharing.js";
import { withTraceContext } from "./trace-context.js";
import type { TraceparentSource } from "./trace-context.js";

/** The transports named, best first; the WebSocket rung only where a WebSocket exists. */
function transportsFor(names: readonly TransportName[], WebSocketImpl: WebSocketConstructor | undefined, traceparent?: TraceparentSource): Transport[] {
  const transports = names.flatMap((name): Transport[] => {
    if (name === "websocket") return WebSocketImpl ? [new WebSocketTransport(WebSocketImpl, traceparent)] : [];
    return [name === "sse" ? new SseTransport() : new LongPollTransport()];
  });
  if (transports.length === 0) throw new RangeError("no realtime transport can run here");
  return transports;
}

export interface ClientOptions {
  /** Base URLs of nodes, gateways or regions, in order of preference (each its own region until the directory names it). */
  endpoints: readonly string[];
  /** Endpoints grouped by region, e.g. `{eu: ["https://eu.example.com"], us: [...]}` (docs/sdk-js.md#regions). */
  regions?: Readonly<Record<string, readonly string[]>>;
  /** How often the other regions are probed (a way home after a failover). */
  regionProbeIntervalMs?: number;
  probeTimeoutMs?: number;
  /** After the node answers `410 cursor_unknown` (it was restored), offer back the documents it lost (default `true`). */
  offerAfterRestore?: boolean;
  /** The device's storage: `IndexedDbStorage` in browsers, `SqlStorage` on React Native, `MemoryStorage` in tests. */
  storage: StorageAdapter;
  /** Replaces `client.auth` as the source of credentials: headers for every request (e.g. an API key), called before each one. */
  headers?: HeadersProvider;
  /**
   * `false` opens the storage only (no network at all). With storage shared between tabs
   * (`IndexedDbStorage` where Web Locks exist) only one tab at a time syncs, the others follow it.
   */
  sync?: boolean;
  fetch?: Fetch;
  pushBatch?: number;
  pullLimit?: number;
  longPollWaitMs?: number;
  requestTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Realtime transports to try, best first. */
  transports?: readonly TransportName[];
  /** The WebSocket to use (default `globalThis.WebSocket`; without one the WebSocket rung is skipped). */
  WebSocket?: WebSocketConstructor;
  pollIntervalMs?: number;
  climbBackAfterMs?: number;
  idleTimeoutMs?: number;
  breakerFailures?: number;
  breakerResetMs?: number;
  limits?: Limits;
  /** The device's wall clock in milliseconds (tests and simulations skew it). */
  now?: () => number;
  /** The collections this device pulls and follows, e.g. `["notes_ann", "settings"]` (default: all); writes to others still push. */
  syncCollections?: readonly string[];
  /** The app's current trace context (a W3C `traceparent`) for each request; default: a new trace per request. */
  traceparent?: TraceparentSource;
}

const MAX_SCOPE = 64;

/** The scope as stored and sent: sorted, unique, valid names (`null`: every collection). */
function scopeOf(collections: readonly string[] | undefined): string[] | null {
  if (collections === undefined) return null;
  const scope = [...new Set(collections.map(checkCollection))].sort();
  if (scope.length === 0 || scope.length > MAX_SCOPE) throw new ValidationError(`syncCollections needs 1 to ${MAX_SCOPE} names`, "syncCollections");
  return scope;
}

export class Client {
  private readonly collections = new Map<string, Collection>();
  private closed = false;
  private tabs: TabMembership | null = null;
  /** What an upload queue needs: the storage, the endpoints, the fetch and the credentials. */
  private network!: { storage: StorageAdapter; urls: readonly string[]; fetch: Fetch; headers: HeadersProvider };

  private constructor(
    private readonly store: LocalStore,
    private readonly events: Emitter<ClientEvents>,
    private readonly loop: SyncLoop | null,
    private readonly limits: Limits,
    /** Accounts and sign-in; its session's access token goes with every request unless `headers` is given. */
    readonly auth: Auth,
  ) {}

  /** Open the device's storage and, unless `sync: false`, start syncing in the background. */
  static async open(options: ClientOptions): Promise<Client> {
    const store = new LocalStore(options.storage, options.now);
    await store.open();
    const events = new Emitter<ClientEvents>();
    const fetchFn = withTraceContext(options.fetch ?? globalThis.fetch.bind(globalThis), options.traceparent);
    const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    let loop: SyncLoop | null = null;
    const urls = [...options.endpoints, ...Object.values(options.regions ?? {}).flat()];
    const auth = new Auth(store, urls, fetchFn, requestTimeoutMs, (session) => {
      events.emit("auth", session === null ? null : { uid: session.uid, anonymous: session.anonymous });
      loop?.syncNow(); // writes refused for want of a token can go now
    });
    await auth.load();
    const collections = scopeOf(options.syncCollections);
    await store.follow(collections);
    loop =
      options.sync === false
        ? null
        : new SyncLoop(
            store,
            new EndpointPool(options.endpoints, { threshold: options.breakerFailures ?? 3, resetMs: options.breakerResetMs ?? 5_000, ...(options.regions ? { regions: options.regions } : {}) }),
            events,
            {
              pushBatch: options.pushBatch ?? 500,
              pullLimit: options.pullLimit ?? 1000,
              longPollWaitMs: options.longPollWaitMs ?? 25_000,
              requestTimeoutMs,
              backoffBaseMs: options.backoffBaseMs ?? 200,
              backoffCapMs: options.backoffCapMs ?? 30_000,
              pollIntervalMs: options.pollIntervalMs ?? 30_000,
              climbBackAfterMs: options.climbBackAfterMs ?? 300_000,
              idleTimeoutMs: options.idleTimeoutMs ?? 45_000,
              collections,
              regionProbeIntervalMs: options.regionProbeIntervalMs ?? 5_000,
              probeTimeoutMs: options.probeTimeoutMs ?? 2_000,
              offerAfterRestore: options.offerAfterRestore ?? true,
            },
            fetchFn,
            transportsFor(options.transports ?? ["websocket", "sse", "long_poll"], options.WebSocket ?? globalThis.WebSocket, options.traceparent),
            options.headers ?? auth.provider,
          );
    const client = new Client(store, events, loop, options.limits ?? DEFAULT_LIMITS, auth);
    client.network = { storage: options.storage, urls, fetch: fetchFn, headers: options.headers ?? auth.provider };
    const tabs = options.storage.tabs;
    if (tabs === undefined) loop?.start();
    else client.tabs = joinTabs(tabs, store, events, auth, loop); // syncs while this tab leads
    return client;
  }

  private live(): void {
    if (this.closed) throw new ClientClosed();
  }

  /** The collection `name` (the same object on every call). */
  collection(name: string): Collection {
    this.live();
    let collection = this.collections.get(name);
    if (collection === undefined) {
      collection = new Collection(name, this.store, this.events, () => this.loop?.wake(), this.limits);
      this.collections.set(name, collection);
    }
    return collection;
  }

  /** What the sync is doing now (also sent as `status` events). */
  get status(): Status {
    return this.loop?.status ?? { state: "offline", pending: this.store.entries().length, endpoint: null, transport: null, lastError: null };
  }

  /**
   * Whether this client runs the sync: always when it syncs and its storage is its own; of the
   * tabs sharing one storage, the one that leads (the others follow its changes).
   */
  get leading(): boolean {
    if (this.loop === null || this.closed) return false;
    return this.tabs?.leading ?? true;
  }

  /** This device's id: the prefix of its mutation ids. */
  get deviceId(): string {
    return this.store.deviceId;
  }

  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** Retry at once (e.g. when the OS reports the network back), skipping backoff and open breakers. */
  syncNow(): void {
    this.loop?.syncNow();
  }

  /** Entries not yet acknowledged and stable, oldest first. */
  outbox(): readonly OutboxEntry[] {
    return this.store.entries();
  }

  /**
   * The device's durable queue of file uploads (docs/sdk-js.md#files) in the client's storage,
   * sent with tus to the endpoint the sync uses now (else the first), with the client's
   * credentials: a tus upload lives on the node that created it.
   */
  uploadQueue(options: UploadOptions = {}): UploadQueue {
    this.live();
    const { storage, urls, fetch, headers } = this.network;
    return new UploadQueue(storage, this.status.endpoint ?? (urls[0] as string), fetch, headers, options);
  }

  /** Every mutation the server refused, oldest first. */
  rejections(): Promise<Rejection[]> {
    return this.store.rejections();
  }

  /** Stop syncing and close the storage; writes already resolved are kept. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tabs?.leave();
    await this.loop?.stop();
    await this.store.close();
  }
}
