/**
 * The background sync, with the Python SDK's rules (docs/sdk.md#sync-in-detail). One round on
 * the chosen endpoint:
 *
 * 1. push unsent outbox entries in batches, over the realtime WebSocket when it is open (a `push`
 *    message, src/realtime/socket-push.ts), else, or when it gives no answer, over HTTP;
 *    acknowledged entries keep their `(origin, seq)` and stay queued; rejected ones leave the
 *    outbox and roll back; a `clock_skew` refusal corrects the device clock, re-stamps and
 *    pushes again; a `413` without an index halves the batch;
 *    an acknowledgement whose state the answer carries and that follows the cursor without a
 *    gap is taken in as its pull would be, in the transaction that records it (a stable write
 *    settles at once; docs/protocol.md#settling-a-write-from-the-push-answer-every-sdk);
 * 2. when a pull is due, pull pages (with states) until `has_more` is false; each page commits
 *    with its cursor, and entries acknowledged, stable and pulled back leave the outbox; a `410`
 *    on the cursor starts a full resync that keeps the outbox. A pull is due on the first round,
 *    after a failure or an endpoint switch, when realtime reported a cursor ahead of the
 *    device's, after `pollIntervalMs` without a wake-up, on `syncNow()`, and while the outbox
 *    holds acknowledged entries (not yet stable, or not taken in): a round that only pushed
 *    writes it settled pulls nothing, and the realtime echo of the device's own change is
 *    behind the cursor by then (no pull);
 * 3. wait for a local write, `syncNow()`, a realtime notice or `pollIntervalMs` (a safety net).
 *
 * While the platform says it is offline (`NetworkState`, a browser's `navigator.onLine`) the
 * loop sends nothing and closes its realtime connection; its `online` event starts a round.
 *
 * Realtime runs beside the loop on the current endpoint: the transport ladder (WebSocket, SSE,
 * long-poll, falling back when one is refused) only says that the feed moved past the device's
 * cursor, and the loop pulls the changes with their states. A notice that arrives while a round
 * pushes does not wake the loop: the round decides after the push whether it still lies ahead.
 *
 * A push refused as unavailable still lets the pull run (a node that refuses writes may serve
 * reads). Failures mark the endpoint in the pool (breaker, failover) and wait with exponential
 * backoff and full jitter. Switching endpoints re-pushes acknowledged-but-unstable entries (the
 * old node may die before replicating them; mutation ids make the re-push safe).
 *
 * Region routing (docs/protocol.md#region-routing-every-sdk): before the first choice every
 * endpoint is probed once (a new device starts in the nearest region); beside the loop a prober
 * probes the other regions every `regionProbeIntervalMs`, re-reads the directory
 * (`GET /v1/regions`) every `ttl`, and wakes the loop when the pool has a better region to move
 * to. A failure while another region is known healthy fails over at once (no breaker threshold).
 */

import { Backoff } from "./backoff.js";
import type { State } from "./document.js";
import type { Endpoint, EndpointPool } from "./endpoints.js";
import { BreakwaterError, CursorExpired, EndpointUnavailable } from "./errors.js";
import type { Problem } from "./errors.js";
import type { ClientEvents, Emitter, Status } from "./events.js";
import type { LocalStore } from "./local-store.js";
import { whileOnline } from "./network.js";
import type { NetworkState } from "./network.js";
import { NodeApi } from "./node-api.js";
import type { Fetch, HeadersProvider, PullPage, PushAnswer } from "./node-api.js";
import { toWire } from "./outbox.js";
import type { OutboxEntry } from "./outbox.js";
import { pause } from "./pause.js";
import { TransportLadder } from "./realtime/ladder.js";
import { SocketGone, SocketPush } from "./realtime/socket-push.js";
import { isAhead } from "./realtime/transport.js";
import type { StreamContext, Transport } from "./realtime/transport.js";

const MAX_RESTAMPS_PER_PUSH = 3;
/** Refusals of the mutations themselves: re-sending them never helps. */
const PERMANENT_INPUT_ERRORS = new Set(["validation_error", "payload_too_large", "schema_violation"]);

export interface SyncSettings {
  pushBatch: number;
  pullLimit: number;
  longPollWaitMs: number;
  requestTimeoutMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  pollIntervalMs: number;
  climbBackAfterMs: number;
  idleTimeoutMs: number;
  /** The collections this device pulls and follows (`null`: all). */
  collections: readonly string[] | null;
  regionProbeIntervalMs: number;
  probeTimeoutMs: number;
  /** After `410 cursor_unknown` (the node was restored) offer back what it lost (src/restore-offers.ts). */
  offerAfterRestore: boolean;
}

/**
 * Why the loop's wait ended early (a local write, `syncNow()`, a notice), as the reason of the
 * abort that ends it: nothing reads it, and the default reason, a `DOMException` with its stack,
 * costs more than the rest of a wake-up.
 */
const WOKEN = "woken";

/** Seconds the directory is kept when the node does not say (`ttl`). */
const DEFAULT_DIRECTORY_TTL_S = 30;

export class SyncLoop {
  status: Status = { state: "offline", pending: 0, endpoint: null, transport: null, lastError: null };
  private readonly stopping = new AbortController();
  private retry = new AbortController();
  private wakeUp = new AbortController();
  private readonly backoff: Backoff;
  private endpoint: Endpoint | null = null;
  private pushBatch: number;
  private running: Promise<void> | null = null;
  private realtime: { stop: AbortController; done: Promise<void> } | null = null;
  /** Realtime notices waiting for the device to pull up to their cursor. */
  private readonly notices = new Set<() => boolean>();
  /** Whether the next round pulls whatever realtime said (see the module docstring). */
  private pullDue = true;
  /** The newest cursor realtime reported (a pull is due while it is ahead of the device's). */
  private heard = "";
  /** A round is pushing: realtime notices do not wake the loop then. */
  private pushing = false;
  /** The WebSocket of the realtime in use, when open: pushes go there. */
  private socket = new SocketPush();
  private directoryTtlMs = DEFAULT_DIRECTORY_TTL_S * 1000;
  private directoryReadAt = -Infinity;
  /** The directory read started by the last switch of endpoint (aborted by the next). */
  private directoryRead: AbortController | null = null;
  private readonly fetchFn: Fetch;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly store: LocalStore,
    private readonly pool: EndpointPool,
    private readonly events: Emitter<ClientEvents>,
    private readonly settings: SyncSettings,
    fetchFn: Fetch,
    private readonly transports: readonly Transport[],
    private readonly network: NetworkState,
    private readonly headers?: HeadersProvider,
    random?: () => number,
    /** Milliseconds, for round trips and the directory's age (injected like `random`). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.backoff = new Backoff(settings.backoffBaseMs, settings.backoffCapMs, random);
    this.pushBatch = settings.pushBatch;
    this.fetchFn = whileOnline(fetchFn, network); // a request started as the network goes fails, as it would
  }

  start(): void {
    // Either way the loop must look again: go to the offline wait, or leave it now.
    this.unsubscribe ??= this.network.subscribe((online) => (online ? this.syncNow() : (this.retry.abort(WOKEN), this.wakeUp.abort(WOKEN))));
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.unsubscribe?.();
    await this.running;
    await this.stopRealtime();
  }

  /** A local write: end the wait so that the write is pushed at once. */
  wake(): void {
    this.wakeUp.abort(WOKEN);
  }

  /** The app says the network is back: probe every endpoint and retry now (pulling too). */
  syncNow(): void {
    this.pullDue = true;
    this.pool.probeNow();
    this.retry.abort(WOKEN);
    this.wakeUp.abort(WOKEN);
  }

  private update(change: Partial<Status>): void {
    this.status = { ...this.status, pending: this.store.entries().length, ...change };
    this.events.emit("status", this.status);
  }

  private async wait(ms: number): Promise<void> {
    await pause(ms, this.retry.signal, this.stopping.signal);
    if (this.retry.signal.aborted) this.retry = new AbortController();
  }

  private api(url: string): NodeApi {
    return new NodeApi(url, this.fetchFn, this.settings.requestTimeoutMs, this.headers, this.stopping.signal, this.now);
  }

  private async run(): Promise<void> {
    if (this.pool.regions().length > 1) await this.probe(this.pool.unmeasured());
    const prober = this.probeRegions();
    while (!this.stopping.signal.aborted) {
      if (!this.network.online) {
        await this.offline();
        continue;
      }
      const endpoint = this.pool.choose();
      if (endpoint === null) {
        this.update({ state: "offline" });
        await this.wait(Math.max(this.pool.retryIn(), 50));
        continue;
      }
      const api = this.api(endpoint.url);
      let switching = endpoint !== this.endpoint;
      try {
        if (switching) {
          // Health before switching (a draining or unready node answers 503), unless a probe just
          // said so; then a failure of the first round on it counts as the failed check.
          if (!this.pool.vouchedFor(endpoint, this.settings.regionProbeIntervalMs)) {
            this.pool.succeeded(endpoint, await api.ready());
            switching = false;
          }
          await this.use(endpoint, api);
        } else if (this.realtime === null) this.listen(endpoint);
        await this.round(api);
        this.pool.succeeded(endpoint, api.lastLatency);
        this.backoff.reset();
        await this.follow();
      } catch (error) {
        if (this.stopping.signal.aborted) break;
        this.pullDue = true;
        const unavailable = error instanceof EndpointUnavailable;
        if (unavailable) {
          if (error.reason === "region_standby") this.pool.regionStates.set(endpoint.region, "standby");
          // At the first failure when another region is known healthy: a breaker's threshold costs a timeout each.
          this.pool.failed(endpoint, switching || this.pool.healthyElsewhere(endpoint));
        }
        this.update({ ...(unavailable ? { state: "offline" as const } : {}), lastError: String(error) });
        if (unavailable && this.pool.current === null && this.pool.hasAlternative()) continue; // fail over now
        const retryAfter = unavailable ? error.retryAfter : undefined;
        await this.wait(retryAfter !== undefined ? retryAfter * 1000 : this.backoff.next());
      }
    }
    await prober;
  }

  // -- region routing -----------------------------------------------------------------------

  /** `GET /readyz` on each of `endpoints` at once, each bounded by `probeTimeoutMs`: latency and streaks, or breakers. */
  private async probe(endpoints: readonly Endpoint[]): Promise<void> {
    if (!this.network.online) return; // each would fail and count against its region
    await Promise.all(
      endpoints.map(async (endpoint) => {
        if (!endpoint.breaker.allow()) return;
        try {
          this.pool.succeeded(endpoint, await this.api(endpoint.url).ready(AbortSignal.timeout(this.settings.probeTimeoutMs)));
        } catch {
          if (!this.stopping.signal.aborted) this.pool.failed(endpoint);
        }
      }),
    );
  }

  /** Probe the other regions and re-read the directory until stopped; wake the loop when the pool would move. */
  private async probeRegions(): Promise<void> {
    for (;;) {
      await pause(this.settings.regionProbeIntervalMs, this.stopping.signal);
      if (this.stopping.signal.aborted) return;
      if (this.endpoint !== null && this.now() - this.directoryReadAt > this.directoryTtlMs) await this.learn(this.api(this.endpoint.url));
      await this.probe(this.pool.toProbe());
      if (this.pool.betterRegion() !== null) this.wakeUp.abort(WOKEN);
    }
  }

  /**
   * Re-read the region directory from `api`'s node beside the sync, not before it: a device failing
   * over pushes to its new region at once (the directory only refines routing; the prober re-reads
   * it every `ttl` anyway). A read still running for the endpoint left is abandoned.
   */
  private readDirectory(api: NodeApi): void {
    this.directoryRead?.abort();
    const read = new AbortController();
    this.directoryRead = read;
    void this.learn(api, read.signal);
  }

  /** Read the region directory from `api`'s node (an older node lacks it: the app's configuration is then all the SDK knows). */
  private async learn(api: NodeApi, signal?: AbortSignal): Promise<void> {
    this.directoryReadAt = this.now();
    try {
      const timeout = AbortSignal.timeout(this.settings.probeTimeoutMs);
      const directory = await api.regions(signal === undefined ? timeout : AbortSignal.any([timeout, signal]));
      if (typeof directory.ttl === "number" && directory.ttl > 0) this.directoryTtlMs = directory.ttl * 1000;
      this.pool.learn(directory);
    } catch {
      // no directory: keep what is known
    }
  }

  /** No network, says the platform: drop realtime and wait for its `online` (or the poll interval). */
  private async offline(): Promise<void> {
    await this.stopRealtime();
    this.pullDue = true; // realtime was down: what it would have said is unknown
    this.update({ state: "offline", transport: null });
    await this.wait(this.settings.pollIntervalMs);
  }

  /** Switch to `endpoint`: re-push what the old one did not make stable, restart realtime. */
  private async use(endpoint: Endpoint, api: NodeApi): Promise<void> {
    if (this.endpoint !== null) await this.store.forgetAcks();
    this.endpoint = endpoint;
    this.pullDue = true;
    this.readDirectory(api);
    this.update({ endpoint: endpoint.url });
    await this.stopRealtime();
    this.listen(endpoint);
  }

  /** Follow `endpoint`'s feed with the transport ladder, beside the loop. */
  private listen(endpoint: Endpoint): void {
    const stop = new AbortController();
    const ladder = new TransportLadder(
      this.transports,
      this.settings.climbBackAfterMs,
      (transport) => this.update({ transport }),
      () => this.pullSoon(), // the cursor expired (pull, resync) or the stream's node failed (check it)
    );
    this.socket = new SocketPush();
    const context: StreamContext = {
      baseUrl: endpoint.url,
      fetch: this.fetchFn,
      headers: this.headers,
      signal: AbortSignal.any([stop.signal, this.stopping.signal]),
      idleTimeoutMs: this.settings.idleTimeoutMs,
      longPollWaitMs: this.settings.longPollWaitMs,
      requestTimeoutMs: this.settings.requestTimeoutMs,
      collections: this.settings.collections,
      cursor: () => this.store.cursor,
      notify: (cursor) => this.notified(cursor),
      socket: this.socket,
    };
    this.realtime = { stop, done: ladder.run(context) };
  }

  private async stopRealtime(): Promise<void> {
    const realtime = this.realtime;
    this.realtime = null;
    realtime?.stop.abort();
    await realtime?.done;
  }

  /** Make the next round pull, and start it. */
  private pullSoon(): void {
    this.pullDue = true;
    this.wakeUp.abort(WOKEN);
  }

  /**
   * A transport saw the feed move to `cursor`: note it and wake the loop (not while a round
   * pushes: the round looks after its push); resolves once the device's cursor covers it (or
   * after the poll interval). Nothing is done for a cursor the device holds already: the echo
   * of its own change, taken in from the push answer.
   */
  private notified(cursor: string): Promise<void> {
    if (!isAhead(cursor, this.store.cursor)) return Promise.resolve();
    this.heard = cursor;
    if (!this.pushing) this.wakeUp.abort(WOKEN);
    return new Promise((resolve) => {
      const waiter = (): boolean => {
        if (isAhead(cursor, this.store.cursor)) return false;
        settle();
        return true;
      };
      const settle = (): void => {
        clearTimeout(timer);
        this.notices.delete(waiter);
        resolve();
      };
      const timer = setTimeout(settle, this.settings.pollIntervalMs);
      if (!waiter()) this.notices.add(waiter);
    });
  }

  private async round(api: NodeApi): Promise<void> {
    if (this.store.entries().length > 0 || this.status.state === "offline") this.update({ state: "syncing" });
    let pushFailed: EndpointUnavailable | null = null;
    this.pushing = true;
    try {
      await this.pushAll(api);
    } catch (error) {
      if (!(error instanceof EndpointUnavailable)) throw error;
      pushFailed = error; // a node that refuses writes may still serve reads: pull
      this.pullDue = true;
    } finally {
      this.pushing = false;
    }
    if (this.pullWanted()) {
      this.pullDue = false;
      await this.pullAll(api);
    }
    if (pushFailed !== null) throw pushFailed;
    this.update({ state: this.store.unsent(1).length > 0 ? "syncing" : "online", lastError: null });
    if (this.heardAhead()) this.wakeUp.abort(WOKEN); // heard of while this round ran: go again at once
  }

  /** Whether this round pulls: see the module docstring. */
  private pullWanted(): boolean {
    return this.pullDue || this.heardAhead() || this.store.entries().some((e) => e.origin !== null);
  }

  private heardAhead(): boolean {
    return this.heard !== "" && isAhead(this.heard, this.store.cursor);
  }

  /** Wait for a local write, `syncNow()`, a realtime notice or the poll interval (after which a pull is due). */
  private async follow(): Promise<void> {
    // A wake-up during the round (a notice of changes it may have missed) counts too.
    if (this.store.unsent(1).length === 0 && !this.wakeUp.signal.aborted) {
      await pause(this.settings.pollIntervalMs, this.wakeUp.signal, this.stopping.signal);
      if (!this.wakeUp.signal.aborted && !this.stopping.signal.aborted) this.pullDue = true;
    }
    this.wakeUp = new AbortController();
  }

  // -- push ---------------------------------------------------------------------------------

  private async pushAll(api: NodeApi): Promise<void> {
    let restamps = 0;
    for (;;) {
      const batch = this.store.unsent(this.pushBatch);
      if (batch.length === 0) return;
      let answer: PushAnswer;
      try {
        answer = await this.push(api, batch.map(toWire));
      } catch (error) {
        if (!(error instanceof BreakwaterError) || error instanceof EndpointUnavailable) throw error;
        const index = error.problem["index"];
        if (error.type === "clock_skew") {
          restamps += 1;
          if (restamps > MAX_RESTAMPS_PER_PUSH) throw new EndpointUnavailable(`clock skew persists: ${error.message}`);
          await this.store.restamp(String(error.problem["hlc"]));
          continue;
        }
        if (error.type === "payload_too_large" && typeof index !== "number" && this.pushBatch > 1) {
          this.pushBatch = Math.max(1, Math.floor(this.pushBatch / 2));
          continue;
        }
        const refusesOne = error.type === "forbidden" ? typeof index === "number" : PERMANENT_INPUT_ERRORS.has(error.type);
        if (!refusesOne) throw error; // the push as a whole (e.g. 401): the writes stay queued
        const entry = batch[typeof index === "number" && index >= 0 && index < batch.length ? index : 0] as OutboxEntry;
        await this.rejected([[entry.mutationId, error.problem]]);
        continue;
      }
      await this.record(answer, batch, api.baseUrl);
    }
  }

  /**
   * Push over the open realtime WebSocket, or over HTTP when there is none or it gives no answer
   * (the same mutation ids: a repeat is applied once). A push the socket's token no longer
   * covers goes over HTTP too, where a 401 renews the token and retries.
   */
  private async push(api: NodeApi, mutations: readonly Record<string, unknown>[]): Promise<PushAnswer> {
    if (this.socket.open) {
      try {
        return await this.socket.push(mutations, this.settings.requestTimeoutMs);
      } catch (error) {
        const unauthorized = error instanceof BreakwaterError && error.type === "unauthorized";
        if (!(error instanceof SocketGone) && !unauthorized) throw error;
      }
    }
    return api.push(this.store.deviceId, mutations);
  }

  private async record(answer: PushAnswer, batch: readonly OutboxEntry[], endpoint: string): Promise<void> {
    const acks: [string, string, number][] = [];
    const duplicates = new Set<string>();
    const refused: [string, Problem][] = [];
    for (const result of answer.results) {
      if ((result.status === "applied" || result.status === "duplicate") && result.origin !== undefined && result.seq !== undefined) {
        acks.push([result.mutation_id, result.origin, result.seq]);
        if (result.status === "duplicate") duplicates.add(result.mutation_id);
      } else {
        refused.push([result.mutation_id, result.error ?? { type: "rejected" }]);
      }
    }
    if (answer.hlc) this.store.clock.observe(answer.hlc);
    if (acks.length > 0) {
      const pushed = new Map(batch.map((e) => [e.mutationId, e]));
      const entries = acks.flatMap(([mid, origin, seq]) => {
        const entry = pushed.get(mid);
        return entry ? [{ ...entry, origin, seq }] : [];
      });
      // Told before the device records it, so that a stop in between cannot hide an ack.
      this.events.emit("acknowledged", { entries, duplicates, endpoint });
      const states = new Map<string, State>();
      const derive = new Set<string>();
      for (const result of answer.results) {
        if (result.status !== "applied") continue;
        if (result.state !== undefined) states.set(result.mutation_id, result.state);
        else if (answer.derive) derive.add(result.mutation_id);
      }
      this.synced(await this.store.recordAcks(acks, states, answer.stable ?? {}, derive));
    }
    if (refused.length > 0) await this.rejected(refused);
  }

  private async rejected(refused: readonly (readonly [string, Problem])[]): Promise<void> {
    const rejections = await this.store.reject(refused);
    this.events.emit("changed", new Set(rejections.map((r) => r.collection)));
    for (const rejection of rejections) this.events.emit("rejected", rejection);
  }

  // -- pull ---------------------------------------------------------------------------------

  /**
   * Pull until caught up. The next page is requested (with this page's cursor) while this one
   * is written to storage, so a first sync waits for the network and the storage at once.
   */
  private async pullAll(api: NodeApi): Promise<void> {
    const progress = { changes: 0, pages: 0 };
    const pull = (cursor: string): Promise<PullPage> => api.pull(cursor, this.settings.pullLimit, { collections: this.settings.collections });
    let ahead: Promise<PullPage> | null = null;
    for (;;) {
      let page: PullPage;
      try {
        page = await (ahead ?? pull(this.store.cursor));
      } catch (error) {
        ahead = null;
        if (!(error instanceof CursorExpired)) throw error;
        // Any 410 on the cursor: start over, keep the outbox; after a restore, offer back what the node lost.
        await this.store.beginResync(this.settings.offerAfterRestore && error.type === "cursor_unknown");
        continue;
      }
      ahead = page.has_more ? pull(page.cursor) : null;
      ahead?.catch(() => undefined); // its failure is handled where it is awaited
      if (!(await this.applyPage(page, progress))) return;
    }
  }

  /** Apply one pulled page; whether more are waiting. */
  private async applyPage(page: PullPage, progress: { changes: number; pages: number }): Promise<boolean> {
    const collections = await this.store.applyPage(page.changes, page.cursor, page.stable ?? {}, !page.has_more);
    if (page.hlc) this.store.clock.observe(page.hlc);
    progress.changes += page.changes.length;
    progress.pages += 1;
    this.synced(collections);
    if (page.changes.length > 0 || page.has_more) this.events.emit("progress", { ...progress, hasMore: page.has_more });
    this.update({});
    return page.has_more;
  }

  /** A page of synced changes committed (pulled, or taken from a push answer): tell the notices it covers and the views. */
  private synced(collections: ReadonlySet<string>): void {
    for (const waiter of this.notices) waiter();
    if (collections.size > 0) this.events.emit("changed", collections);
  }
}
