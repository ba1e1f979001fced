/**
 * Routing across regions and their endpoints, with the Python SDK's rules
 * (docs/protocol.md#region-routing-every-sdk, `breakwater.client.endpoints`). Endpoints are
 * grouped by region (the app's `regions`, else one region per URL, refined by the directory,
 * `GET /v1/regions`). Each has a circuit breaker and a latency estimate (an EWMA of probes and
 * real round trips); a region's latency is its best endpoint's. `choose()` keeps the current
 * endpoint while it works (no flapping), else takes the best region (writable first, then
 * fastest) whose breaker lets a call through. Moving while the current one works (home after a
 * failover, or to a region that became nearer) needs hysteresis: the other region answered
 * `settleProbes` probes in a row and is faster by `moveMargin`.
 */

const EWMA_WEIGHT = 0.3;
/** Directory states in which a region takes no writes: left while any other region works. */
const UNAVAILABLE_STATES = new Set(["standby", "draining"]);
const STATE_RANK: Record<string, number> = { active: 0, unknown: 1, unreachable: 2, draining: 3, standby: 3 };

type BreakerState = "closed" | "open" | "half_open";

/** Closed → (threshold consecutive failures) → open → (resetMs) → half open: one probe decides. */
export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | null = null;
  private probing = false;

  constructor(
    readonly threshold = 3,
    readonly resetMs = 5_000,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  get state(): BreakerState {
    if (this.openedAt === null) return "closed";
    return this.probing || this.clock() - this.openedAt >= this.resetMs ? "half_open" : "open";
  }

  /** Whether a call may go now; half open lets only the first caller through. */
  allow(): boolean {
    const state = this.state;
    if (state === "closed") return true;
    if (state === "half_open" && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  /** Milliseconds until an open breaker lets a probe through. */
  retryIn(): number {
    if (this.openedAt === null || this.probing) return 0;
    return Math.max(0, this.resetMs - (this.clock() - this.openedAt));
  }

  /** Let the next call through as a probe now (the app says the network is back). */
  probeNow(): void {
    if (this.openedAt !== null && !this.probing) this.openedAt = this.clock() - this.resetMs;
  }

  recordSuccess(): void {
    this.failures = 0;
    this.openedAt = null;
    this.probing = false;
  }

  /** Open now (a health check before switching failed, or another region is known healthy). */
  trip(): void {
    this.failures = this.threshold;
    this.openedAt = this.clock();
    this.probing = false;
  }

  recordFailure(): void {
    this.failures += 1;
    if (this.probing || this.failures >= this.threshold) {
      this.openedAt = this.clock();
      this.probing = false;
    }
  }
}

export interface Endpoint {
  readonly url: string;
  readonly breaker: CircuitBreaker;
  region: string;
  /** Round-trip estimate in milliseconds (`null`: not measured yet). */
  latency: number | null;
  /** Successes in a row (a failure resets it). */
  streak: number;
  /** Its last call failed (ranked after the others while its breaker is still closed). */
  failing: boolean;
  /** When it last answered a probe or a call (the pool's clock; `null`: never). */
  answeredAt: number | null;
}

export interface PoolOptions {
  threshold?: number;
  resetMs?: number;
  clock?: () => number;
  /** The app's regions: `{eu: ["https://eu1...", ...], ...}`. */
  regions?: Readonly<Record<string, readonly string[]>>;
  settleProbes?: number;
  moveMargin?: number;
  /** Seeds this device's order of a region's endpoints (random when absent; fixed in tests). */
  spreadSeed?: number;
}

const CRC32_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 of `text`'s UTF-8 bytes: the Python SDK's `zlib.crc32`, so both spread alike. */
export function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(text)) crc = (CRC32_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** A `GET /v1/regions` answer (docs/protocol.md#get-v1regions-the-region-directory). */
export interface Directory {
  regions?: { name?: unknown; state?: unknown; endpoints?: unknown }[];
  ttl?: unknown;
}

export class EndpointPool {
  readonly endpoints: Endpoint[] = [];
  /** Each region's state from the last directory read (`active`, `standby`, ...). */
  readonly regionStates = new Map<string, string>();
  current: Endpoint | null = null;
  readonly settleProbes: number;
  readonly moveMargin: number;
  private readonly seed: number;
  private readonly clock: () => number;

  constructor(
    urls: readonly string[],
    private readonly options: PoolOptions = {},
  ) {
    this.settleProbes = options.settleProbes ?? 3;
    this.moveMargin = options.moveMargin ?? 0.3;
    this.seed = options.spreadSeed ?? Math.floor(Math.random() * 2 ** 32);
    this.clock = options.clock ?? (() => performance.now());
    for (const url of urls) this.add(url, null);
    for (const [name, members] of Object.entries(options.regions ?? {})) for (const url of members) this.add(url, name);
    if (this.endpoints.length === 0) throw new RangeError("at least one endpoint is needed");
  }

  private add(raw: string, region: string | null): Endpoint {
    const url = raw.replace(/\/+$/, "");
    const known = this.endpoints.find((e) => e.url === url);
    if (known !== undefined) {
      if (region !== null && known.region === url) known.region = region; // grouped by URL only: the name is news
      return known;
    }
    const { threshold = 3, resetMs = 5_000, clock } = this.options;
    const endpoint: Endpoint = { url, region: region ?? url, breaker: new CircuitBreaker(threshold, resetMs, clock), latency: null, streak: 0, failing: false, answeredAt: null };
    this.endpoints.push(endpoint);
    return endpoint;
  }

  /** Take in a directory: name the regions of known URLs, add unknown endpoints, note states; the endpoints added. */
  learn(directory: Directory): Endpoint[] {
    const before = this.endpoints.length;
    for (const region of Array.isArray(directory.regions) ? directory.regions : []) {
      if (typeof region?.name !== "string") continue;
      const state = typeof region.state === "string" && region.state in STATE_RANK ? region.state : "unknown";
      this.regionStates.set(region.name, state);
      for (const url of Array.isArray(region.endpoints) ? region.endpoints : []) {
        if (typeof url === "string" && /^https?:\/\//.test(url)) this.add(url, region.name);
      }
    }
    return this.endpoints.slice(before);
  }

  /** The best measured latency of `region`'s endpoints (`null`: none measured). */
  regionLatency(region: string): number | null {
    const measured = this.endpoints.filter((e) => e.region === region && e.latency !== null).map((e) => e.latency as number);
    return measured.length > 0 ? Math.min(...measured) : null;
  }

  /** Endpoints never measured (probed before the first choice, so a device starts in the nearest region). */
  unmeasured(): Endpoint[] {
    return this.endpoints.filter((e) => e.latency === null && e.breaker.state === "closed");
  }

  /** The regions in the pool, in order of first appearance. */
  regions(): string[] {
    return [...new Set(this.endpoints.map((e) => e.region))];
  }

  private writable(endpoint: Endpoint): boolean {
    return !UNAVAILABLE_STATES.has(this.regionStates.get(endpoint.region) ?? "unknown");
  }

  /**
   * `endpoint`'s place in this device's order: its region's place in the app's order, then a
   * place among the region's endpoints drawn from the pool's seed. A region's endpoints are its
   * nodes, equally good: each device takes them in its own order, so a region's devices (and
   * those failing over to it) spread over its nodes instead of all landing on the first listed.
   */
  private turn(endpoint: Endpoint): number[] {
    return [this.endpoints.findIndex((e) => e.region === endpoint.region), crc32(`${this.seed}:${endpoint.url}`)];
  }

  private rank(endpoint: Endpoint): number[] {
    return [
      Number(endpoint.breaker.state !== "closed"),
      Number(endpoint.failing),
      STATE_RANK[this.regionStates.get(endpoint.region) ?? "unknown"] ?? 1,
      this.regionLatency(endpoint.region) ?? 0,
      ...this.turn(endpoint),
    ];
  }

  /** The endpoint to use now, or `null` when every breaker is open. */
  choose(): Endpoint | null {
    const current = this.current;
    if (current !== null && current.breaker.state === "closed") {
      const better = this.betterRegion();
      if (better !== null) return (this.current = better);
      if (this.writable(current) || !this.othersWritable(current)) return current;
    }
    for (const endpoint of this.ordered((e) => this.rank(e))) {
      if (endpoint.breaker.allow()) return (this.current = endpoint);
    }
    return null;
  }

  private othersWritable(current: Endpoint): boolean {
    return this.endpoints.some((e) => e.region !== current.region && e.breaker.state === "closed" && this.writable(e));
  }

  /** An endpoint of another region worth moving to while the current one works: settled, writable and faster by `moveMargin`. */
  betterRegion(): Endpoint | null {
    const here = this.current === null ? null : this.regionLatency(this.current.region);
    if (here === null) return null;
    let best: Endpoint | null = null;
    for (const e of this.endpoints) {
      if (e.region === this.current?.region || e.breaker.state !== "closed" || e.streak < this.settleProbes || e.latency === null || !this.writable(e)) continue;
      if (e.latency < here * (1 - this.moveMargin) && (best === null || e.latency < (best.latency ?? 0))) best = e;
    }
    return best;
  }

  /** The endpoints sorted by `key` (compared element by element). */
  private ordered(key: (endpoint: Endpoint) => number[]): Endpoint[] {
    const keyed = this.endpoints.map((endpoint) => ({ key: key(endpoint), endpoint }));
    keyed.sort((a, b) => {
      for (let i = 0; i < a.key.length; i++) if (a.key[i] !== b.key[i]) return (a.key[i] as number) - (b.key[i] as number);
      return 0;
    });
    return keyed.map(({ endpoint }) => endpoint);
  }

  /**
   * One endpoint per other region to probe now, whose breaker lets a call through: the one this
   * device would choose there, so that its answer can vouch for it (the current one is measured
   * by its requests).
   */
  toProbe(): Endpoint[] {
    const chosen = new Map<string, Endpoint>();
    for (const e of this.ordered((e) => [Number(e.breaker.state !== "closed"), ...this.turn(e)])) {
      if (e.region !== this.current?.region && e.breaker.retryIn() === 0 && !chosen.has(e.region)) chosen.set(e.region, e);
    }
    return [...chosen.values()];
  }

  /** Another region answered its last probe or call: a failure here is reason enough to move there. */
  healthyElsewhere(failed: Endpoint): boolean {
    return this.endpoints.some((e) => e.region !== failed.region && e.breaker.state === "closed" && e.streak > 0 && this.writable(e));
  }

  /** Some endpoint other than the current one has a closed breaker (no backoff needed before trying it). */
  hasAlternative(): boolean {
    return this.endpoints.some((e) => e !== this.current && e.breaker.state === "closed");
  }

  /** Milliseconds until some endpoint's breaker lets a probe through. */
  retryIn(): number {
    return Math.min(...this.endpoints.map((e) => e.breaker.retryIn()));
  }

  probeNow(): void {
    for (const endpoint of this.endpoints) endpoint.breaker.probeNow();
  }

  /**
   * `endpoint` answered a health probe or a call in the last `withinMs` and has not failed
   * since: that answer stands for the health check before switching to it, so a failover does
   * not spend a round trip (on a region every failing-over device now hits at once) asking again
   * what the prober has just been told.
   */
  vouchedFor(endpoint: Endpoint, withinMs: number): boolean {
    const answered = endpoint.answeredAt;
    return endpoint.streak > 0 && endpoint.breaker.state === "closed" && answered !== null && this.clock() - answered <= withinMs;
  }

  succeeded(endpoint: Endpoint, latencyMs: number): void {
    endpoint.answeredAt = this.clock();
    endpoint.breaker.recordSuccess();
    endpoint.latency = endpoint.latency === null ? latencyMs : (1 - EWMA_WEIGHT) * endpoint.latency + EWMA_WEIGHT * latencyMs;
    endpoint.streak += 1;
    endpoint.failing = false;
  }

  /** After enough failures the breaker opens and the pool moves on; with `trip` it opens at once. */
  failed(endpoint: Endpoint, trip = false): void {
    if (trip) endpoint.breaker.trip();
    else endpoint.breaker.recordFailure();
    endpoint.streak = 0;
    endpoint.failing = true;
    if (endpoint.breaker.state !== "closed" && this.current === endpoint) this.current = null;
  }
}
