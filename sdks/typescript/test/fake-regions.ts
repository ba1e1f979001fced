// A fake deployment of regions behind one `fetch`, for routing tests without a network: each
// region has its own feed (origin = its name) and applies pushes once per mutation id; pulls
// answer the changes past a cursor with the documents' states; `replicate` copies one region's
// changes to another. A push with `include_state=true` answers each applied result's state and
// the deployment's `stable`, as a node does. A call to a region takes its `latency` in milliseconds (a real timer: the
// SDK measures round trips with its own clock); a region that is `down` refuses connections.
import { advance, decodeCursor, encodeCursor } from "../src/cursor.js";
import type { VersionVector } from "../src/cursor.js";
import { deltaFor, emptyState, join } from "../src/document.js";
import type { JsonObject, Op, State } from "../src/document.js";

interface Change {
  origin: string;
  seq: number;
  collection: string;
  id: string;
  op: string;
  mutationId: string;
  delta: State;
}

export class FakeRegion {
  up = true;
  state: "active" | "standby" | "draining" = "active";
  readonly feed: Change[] = [];
  readonly docs = new Map<string, State>();
  /** Every request: `METHOD path` (long polls as `LONGPOLL cursor`). */
  readonly calls: string[] = [];
  /** Mutation ids pushed here, in order, repeats included. */
  readonly pushed: string[] = [];
  /** Long polls held open, ended with a reset when the region goes down. */
  readonly held = new Set<(error: Error) => void>();
  /** What the region writes for a mutation's data (a rule setting an owner field, say); default: the data as sent. */
  rule: (data: JsonObject) => JsonObject = (data) => data;

  constructor(
    readonly name: string,
    public latency: number,
  ) {}

  /** The region dies: connections refused, held ones reset. */
  down(): void {
    this.up = false;
    for (const reset of this.held) reset(new TypeError("fetch failed: connection reset"));
    this.held.clear();
  }

  get url(): string {
    return `http://${this.name}.test`;
  }

  /** Take `change` (from a push or from replication) once. */
  apply(change: Change): void {
    if (this.feed.some((c) => c.mutationId === change.mutationId)) return;
    this.feed.push(change);
    const key = `${change.collection}/${change.id}`;
    this.docs.set(key, join(this.docs.get(key) ?? emptyState(), change.delta));
  }

  /** The changes past `vector`, oldest first. */
  past(vector: VersionVector): Change[] {
    return this.feed.filter((c) => c.seq > (vector[c.origin] ?? 0));
  }

  data(collection: string, id: string): State | undefined {
    return this.docs.get(`${collection}/${id}`);
  }
}

export class FakeDeployment {
  readonly regions = new Map<string, FakeRegion>();
  /** `stable` every pull answers (empty: nothing stable, every ack stays in the outbox). */
  stable: VersionVector = {};

  constructor(latencies: Record<string, number>) {
    for (const [name, latency] of Object.entries(latencies)) this.regions.set(name, new FakeRegion(name, latency));
  }

  region(name: string): FakeRegion {
    const region = this.regions.get(name);
    if (region === undefined) throw new Error(`no region ${name}`);
    return region;
  }

  /** Copy `from`'s changes to `to` (replication caught up). */
  replicate(from: string, to: string): void {
    for (const change of this.region(from).feed) this.region(to).apply(change);
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const region = [...this.regions.values()].find((r) => r.url === url.origin);
    if (region === undefined || !region.up) throw new TypeError("fetch failed: connection refused");
    await new Promise((resolve) => setTimeout(resolve, region.latency));
    if (!region.up) throw new TypeError("fetch failed: connection reset");
    const method = init?.method ?? "GET";
    if (url.pathname === "/v1/sync/pull" && url.searchParams.has("wait")) return this.longPoll(region, url, init?.signal ?? undefined);
    region.calls.push(`${method} ${url.pathname}`);
    if (url.pathname === "/readyz") return region.state === "draining" ? json(503, { status: "draining" }) : json(200, { status: "ready" });
    if (url.pathname === "/v1/regions") return json(200, this.directory(region));
    if (url.pathname === "/v1/sync/push") return this.push(region, JSON.parse(String(init?.body)) as { mutations: Record<string, unknown>[] }, url.searchParams.get("include_state") === "true");
    if (url.pathname === "/v1/sync/pull") return json(200, this.page(region, url.searchParams.get("cursor") ?? ""));
    return json(404, { type: "not_found" });
  };

  private directory(here: FakeRegion): unknown {
    const regions = [...this.regions.values()].map((r) => ({ name: r.name, state: r.state, endpoints: [r.url], this: r === here }));
    return { region: here.name, regions, ttl: 30 };
  }

  private push(region: FakeRegion, body: { mutations: Record<string, unknown>[] }, includeState: boolean): Response {
    if (region.state === "standby") return json(503, { type: "region_standby", title: "standby" });
    const results = body.mutations.map((m) => {
      const mutationId = String(m["mutation_id"]);
      region.pushed.push(mutationId);
      const known = region.feed.find((c) => c.mutationId === mutationId);
      if (known !== undefined) return { mutation_id: mutationId, status: "duplicate", origin: known.origin, seq: known.seq };
      const seq = region.feed.filter((c) => c.origin === region.name).length + 1;
      const op = m["op"] as Op;
      const data = (m["data"] ?? null) as JsonObject | null;
      const delta = deltaFor(op, data === null ? null : region.rule(data), String(m["hlc"]), mutationId);
      const [collection, id] = [String(m["collection"]), String(m["id"])];
      region.apply({ origin: region.name, seq, collection, id, op, mutationId, delta });
      return { mutation_id: mutationId, status: "applied", origin: region.name, seq, ...(includeState ? { state: region.data(collection, id) } : {}) };
    });
    return json(200, { results, ...(includeState ? { stable: this.stable } : {}) });
  }

  private page(region: FakeRegion, cursor: string): unknown {
    const vector = decodeCursor(cursor);
    const changes = region.past(vector);
    return {
      changes: changes.map((c) => ({ origin: c.origin, seq: c.seq, collection: c.collection, id: c.id, op: c.op, state: region.data(c.collection, c.id) })),
      cursor: encodeCursor(advance(vector, changes.map((c) => [c.origin, c.seq] as const))),
      has_more: false,
      stable: this.stable,
    };
  }

  /** A long poll answers at once when changes are waiting, else holds until aborted. */
  private longPoll(region: FakeRegion, url: URL, signal: AbortSignal | undefined): Promise<Response> {
    const cursor = url.searchParams.get("cursor") ?? "";
    region.calls.push(`LONGPOLL ${cursor}`);
    if (region.past(decodeCursor(cursor)).length > 0) return Promise.resolve(json(200, this.page(region, cursor)));
    return new Promise((_, reject) => {
      region.held.add(reject);
      if (signal?.aborted) reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason));
    });
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": status < 300 ? "application/json" : "application/problem+json" } });
}
