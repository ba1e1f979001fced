/**
 * Client-side failover across endpoints, as the Python SDK does it: each endpoint has a circuit
 * breaker and a latency estimate (EWMA of measured round trips). `choose()` keeps the current
 * endpoint while its breaker is closed, else takes the fastest one whose breaker lets a call
 * through, so a dead node is skipped quickly and probed again later. (Region routing with
 * `GET /v1/regions` and hysteresis comes later: docs/sdk-js.md, "not yet".)
 */

const EWMA_WEIGHT = 0.3;

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
  /** Round-trip estimate in milliseconds (`null`: not measured yet). */
  latency: number | null;
}

export class EndpointPool {
  readonly endpoints: Endpoint[];
  current: Endpoint | null = null;

  constructor(urls: readonly string[], threshold = 3, resetMs = 5_000, clock?: () => number) {
    if (urls.length === 0) throw new RangeError("at least one endpoint is needed");
    this.endpoints = urls.map((url) => ({ url: url.replace(/\/+$/, ""), breaker: new CircuitBreaker(threshold, resetMs, clock), latency: null }));
  }

  /** The endpoint to use now, or `null` when every breaker is open. */
  choose(): Endpoint | null {
    if (this.current !== null && this.current.breaker.state === "closed") return this.current;
    const ranked = this.endpoints
      .map((endpoint, index) => ({ endpoint, index }))
      .sort((a, b) => {
        const closed = Number(a.endpoint.breaker.state !== "closed") - Number(b.endpoint.breaker.state !== "closed");
        const latency = (a.endpoint.latency ?? 0) - (b.endpoint.latency ?? 0);
        return closed || latency || a.index - b.index;
      });
    for (const { endpoint } of ranked) {
      if (endpoint.breaker.allow()) {
        this.current = endpoint;
        return endpoint;
      }
    }
    return null;
  }

  /** Milliseconds until some endpoint's breaker lets a probe through. */
  retryIn(): number {
    return Math.min(...this.endpoints.map((e) => e.breaker.retryIn()));
  }

  probeNow(): void {
    for (const endpoint of this.endpoints) endpoint.breaker.probeNow();
  }

  succeeded(endpoint: Endpoint, latencyMs: number): void {
    endpoint.breaker.recordSuccess();
    endpoint.latency = endpoint.latency === null ? latencyMs : (1 - EWMA_WEIGHT) * endpoint.latency + EWMA_WEIGHT * latencyMs;
  }

  /** After enough failures the breaker opens and the pool moves on. */
  failed(endpoint: Endpoint): void {
    endpoint.breaker.recordFailure();
    if (endpoint.breaker.state !== "closed" && this.current === endpoint) this.current = null;
  }
}
