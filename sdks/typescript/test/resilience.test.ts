// Backoff with full jitter and the endpoint pool's breakers, with injected clock and random.
import { describe, expect, it } from "vitest";

import { Backoff } from "../src/backoff.js";
import { EndpointPool } from "../src/endpoints.js";

describe("Backoff", () => {
  it("draws each wait uniformly below a ceiling that doubles up to the cap", () => {
    const backoff = new Backoff(100, 1_000, () => 0.5);
    expect([1, 2, 3, 4, 5].map(() => backoff.next())).toEqual([50, 100, 200, 400, 500]);
    backoff.reset();
    expect(backoff.next()).toBe(50);
  });
});

describe("EndpointPool", () => {
  it("moves to the next endpoint once the current one's breaker opens, and probes it after the reset time", () => {
    let now = 0;
    const pool = new EndpointPool(["http://a/", "http://b"], { threshold: 2, resetMs: 1_000, clock: () => now });
    const [a, b] = pool.endpoints;
    expect(pool.choose()).toBe(a);
    pool.failed(a!);
    expect(pool.choose()).toBe(a);
    pool.failed(a!);
    expect(pool.choose()).toBe(b);
    pool.failed(b!);
    pool.failed(b!);
    expect(pool.choose()).toBeNull();
    expect(pool.retryIn()).toBe(1_000);
    now = 1_000;
    expect(pool.choose()?.url).toBe("http://a");
  });

  it("lets a probe through at once on probeNow", () => {
    const pool = new EndpointPool(["http://a"], { threshold: 1, resetMs: 60_000, clock: () => 0 });
    pool.failed(pool.endpoints[0]!);
    expect(pool.choose()).toBeNull();
    pool.probeNow();
    expect(pool.choose()?.url).toBe("http://a");
  });
});
