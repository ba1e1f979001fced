// Region routing (docs/protocol.md#region-routing-every-sdk): the pool's rules on a fake clock,
// and the sync loop over a fake deployment of regions (test/fake-regions.ts).
import { afterEach, describe, expect, it, vi } from "vitest";

import { crc32, EndpointPool } from "../src/endpoints.js";
import { Emitter } from "../src/events.js";
import type { ClientEvents } from "../src/events.js";
import { LocalStore } from "../src/local-store.js";
import { ASSUMED_ONLINE } from "../src/network.js";
import { LongPollTransport } from "../src/realtime/long-poll.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { SyncLoop } from "../src/sync.js";
import { FakeDeployment } from "./fake-regions.js";

describe("EndpointPool routing", () => {
  const pool = (): EndpointPool => new EndpointPool([], { regions: { eu: ["http://eu1", "http://eu2"], us: ["http://us1"] }, clock: () => 0 });

  it("groups endpoints by region and ranks a region by its best endpoint", () => {
    const p = pool();
    const [eu1, eu2, us1] = p.endpoints;
    p.succeeded(eu1!, 90);
    p.succeeded(eu2!, 10);
    p.succeeded(us1!, 40);
    expect(p.regions()).toEqual(["eu", "us"]);
    expect(p.regionLatency("eu")).toBe(10);
    expect(p.choose()?.region).toBe("eu");
  });

  it("names regions and adds endpoints from the directory, ignoring what is not a URL", () => {
    const p = new EndpointPool(["http://a/"]);
    const added = p.learn({ regions: [{ name: "eu", state: "active", endpoints: ["http://a", "http://a2", "ftp://x", 7] }, { name: 3 }] });
    expect(added.map((e) => e.url)).toEqual(["http://a2"]);
    expect(p.endpoints.map((e) => e.region)).toEqual(["eu", "eu"]);
    expect(p.regionStates.get("eu")).toBe("active");
  });

  it("stays in a working region until another is settled and faster by the margin", () => {
    const p = pool();
    const [eu1, , us1] = p.endpoints;
    p.succeeded(eu1!, 100);
    p.current = eu1!;
    p.succeeded(us1!, 50);
    p.succeeded(us1!, 50);
    expect(p.choose()).toBe(eu1); // faster, but two probes in a row only
    p.succeeded(us1!, 50);
    expect(p.choose()).toBe(us1); // three in a row and 50 % faster
  });

  it("never trades places between regions of similar latency", () => {
    const p = pool();
    const [eu1, , us1] = p.endpoints;
    p.succeeded(eu1!, 100);
    p.current = eu1!;
    for (let i = 0; i < 20; i++) p.succeeded(us1!, 75); // 25 % faster: inside the margin
    expect(p.choose()).toBe(eu1);
  });

  it("leaves a standby region for a writable one at once, and stays when none is", () => {
    const p = pool();
    const [eu1, , us1] = p.endpoints;
    p.succeeded(eu1!, 10);
    p.succeeded(us1!, 90);
    p.current = eu1!;
    p.regionStates.set("eu", "standby");
    expect(p.choose()).toBe(us1);
    p.regionStates.set("us", "draining");
    p.current = eu1!;
    expect(p.choose()).toBe(eu1);
  });

  it("trips a breaker at once when told, and knows when another region is healthy", () => {
    const p = pool();
    const [eu1, , us1] = p.endpoints;
    p.current = eu1!;
    expect(p.healthyElsewhere(eu1!)).toBe(false);
    p.succeeded(us1!, 30);
    expect(p.healthyElsewhere(eu1!)).toBe(true);
    p.failed(eu1!, true);
    expect(eu1!.breaker.state).toBe("open");
    expect(p.current).toBeNull();
    expect(p.toProbe().map((e) => e.url)).toEqual(["http://eu2", "http://us1"]);
  });

  it("spreads the devices of a region over its endpoints, keeping the app's order of regions", () => {
    const chosen = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const p = new EndpointPool([], { regions: { a: ["http://a1", "http://a2"], b: ["http://b1", "http://b2"] }, spreadSeed: seed });
      const endpoint = p.choose();
      expect(endpoint?.region).toBe("a");
      chosen.add(endpoint!.url);
      expect(p.toProbe().map((e) => e.region)).toEqual(["b"]);
    }
    expect([...chosen].sort()).toEqual(["http://a1", "http://a2"]);
  });

  it("probes, in another region, the endpoint a failover would choose", () => {
    for (let seed = 0; seed < 10; seed++) {
      const p = new EndpointPool([], { regions: { a: ["http://a"], b: ["http://b1", "http://b2"] }, spreadSeed: seed });
      const a = p.choose()!;
      const [probed] = p.toProbe();
      for (const endpoint of p.endpoints) p.succeeded(endpoint, 10);
      p.failed(a, true);
      expect(p.choose()).toBe(probed);
    }
  });

  it("takes a fresh answer for a health check until the endpoint fails or the answer ages", () => {
    let now = 0;
    const p = new EndpointPool(["http://a", "http://b"], { clock: () => now });
    const [a, b] = p.endpoints;
    expect(p.vouchedFor(b!, 1_000)).toBe(false); // never answered
    p.succeeded(b!, 20);
    now = 1_000;
    expect(p.vouchedFor(b!, 1_000)).toBe(true);
    now = 1_500;
    expect(p.vouchedFor(b!, 1_000)).toBe(false); // too old
    p.succeeded(a!, 20);
    p.failed(a!);
    expect(p.vouchedFor(a!, 1_000)).toBe(false); // failed since
  });

  it("spreads like the Python SDK: the same CRC-32", () => {
    expect(crc32("")).toBe(0);
    expect(crc32("123456789")).toBe(0xcbf43926); // the check value of CRC-32/ISO-HDLC (zlib's)
    expect(crc32("7:http://a1")).toBe(3_293_248_739); // zlib.crc32(b"7:http://a1")
  });
});

describe("SyncLoop across regions", () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  async function device(
    deployment: FakeDeployment,
    urls: string[],
    regionProbeIntervalMs = 5,
  ): Promise<{ store: LocalStore; loop: SyncLoop; regions: string[] }> {
    const store = new LocalStore(new MemoryStorage());
    await store.open();
    const events = new Emitter<ClientEvents>();
    const regions: string[] = [];
    events.on("status", (status) => {
      const region = status.endpoint === null ? null : new URL(status.endpoint).hostname.replace(".test", "");
      if (region !== null && regions.at(-1) !== region) regions.push(region);
    });
    const settings = {
      pushBatch: 100,
      pullLimit: 100,
      longPollWaitMs: 60_000,
      requestTimeoutMs: 5_000,
      backoffBaseMs: 5,
      backoffCapMs: 20,
      pollIntervalMs: 60_000,
      climbBackAfterMs: 60_000,
      idleTimeoutMs: 60_000,
      collections: null,
      regionProbeIntervalMs,
      probeTimeoutMs: 1_000,
      offerAfterRestore: true,
    };
    const pool = new EndpointPool(urls, { threshold: 3, resetMs: 30 });
    const loop = new SyncLoop(store, pool, events, settings, deployment.fetch, [new LongPollTransport()], ASSUMED_ONLINE, undefined, () => 0.5);
    loop.start();
    stops.push(() => loop.stop());
    return { store, loop, regions };
  }

  const wait = { timeout: 10_000, interval: 10 };

  it("starts in the nearest region, though the app lists it last", async () => {
    const deployment = new FakeDeployment({ far: 120, near: 2 });
    const { regions } = await device(deployment, ["http://far.test", "http://near.test"]);
    await vi.waitFor(() => expect(regions).toEqual(["near"]), wait);
    await vi.waitFor(() => expect(deployment.region("near").calls.some((c) => c.startsWith("LONGPOLL"))).toBe(true), wait);
    expect(deployment.region("far").calls.filter((c) => c !== "GET /readyz")).toEqual([]); // only probed
  });

  it("fails over when its region dies, re-pushes the unstable write there, and keeps showing it", async () => {
    const deployment = new FakeDeployment({ near: 2, far: 120 });
    const { store, loop, regions } = await device(deployment, ["http://near.test", "http://far.test"]);
    await vi.waitFor(() => expect(regions).toEqual(["near"]), wait);
    const { entry } = await store.write("todos", "t1", "set", { title: "milk" });
    loop.wake();
    await vi.waitFor(() => expect(store.entries()[0]?.origin).toBe("near"), wait); // acknowledged, not stable
    const cursor = store.cursor;
    deployment.region("near").down(); // near dies before replicating it
    await vi.waitFor(() => expect(regions).toEqual(["near", "far"]), wait);
    await vi.waitFor(() => expect(deployment.region("far").pushed).toContain(entry.mutationId), wait);
    expect(deployment.region("far").data("todos", "t1")?.f["title"]).toEqual([entry.hlc, "milk"]);
    expect((await store.get("todos", "t1"))?.data).toEqual({ title: "milk" }); // read-your-writes
    // realtime follows to the new region, from the device's cursor (which the re-push's answer may have moved on since)
    expect(cursor).not.toBe("");
    await vi.waitFor(() => expect(deployment.region("far").calls.find((c) => c.startsWith("LONGPOLL"))).toBe(`LONGPOLL ${cursor}`), wait);
  });

  it("fails over to a region its probe just vouched for without asking it again", async () => {
    const deployment = new FakeDeployment({ near: 2, far: 120 });
    const { store, loop, regions } = await device(deployment, ["http://near.test", "http://far.test"], 60_000);
    await vi.waitFor(() => expect(regions).toEqual(["near"]), wait);
    const { entry } = await store.write("todos", "t1", "set", { title: "milk" });
    loop.wake();
    await vi.waitFor(() => expect(store.entries()[0]?.origin).toBe("near"), wait);
    deployment.region("near").down();
    await vi.waitFor(() => expect(deployment.region("far").pushed).toContain(entry.mutationId), wait);
    const far = deployment.region("far").calls;
    expect(far[0]).toBe("GET /readyz"); // the probe before the first choice, which vouches
    expect(far.filter((c) => c === "GET /readyz")).toHaveLength(1); // no second health check
  });

  it("returns home once it has proved healthy, and then stays", async () => {
    const deployment = new FakeDeployment({ home: 2, away: 120 });
    const { regions } = await device(deployment, ["http://home.test", "http://away.test"]);
    await vi.waitFor(() => expect(regions).toEqual(["home"]), wait);
    deployment.region("home").down();
    await vi.waitFor(() => expect(regions).toEqual(["home", "away"]), wait);
    deployment.region("home").up = true;
    await vi.waitFor(() => expect(regions).toEqual(["home", "away", "home"]), wait);
    const probes = deployment.region("away").calls.filter((c) => c === "GET /readyz").length;
    await vi.waitFor(() => expect(deployment.region("away").calls.filter((c) => c === "GET /readyz").length).toBeGreaterThan(probes + 10), wait);
    expect(regions).toEqual(["home", "away", "home"]); // no flapping while both work
  });

  it("moves writes off a region that answers 503 region_standby, and never shows an older document", async () => {
    const deployment = new FakeDeployment({ near: 2, far: 120 });
    const { store, loop, regions } = await device(deployment, ["http://near.test", "http://far.test"]);
    await vi.waitFor(() => expect(regions).toEqual(["near"]), wait);
    await store.write("todos", "t1", "set", { v: 1 });
    loop.wake();
    await vi.waitFor(() => expect(store.entries()[0]?.origin).toBe("near"), wait);
    deployment.region("near").state = "standby"; // far has not received v1 yet
    await store.write("todos", "t1", "patch", { v: 2 });
    loop.wake();
    await vi.waitFor(() => expect(regions).toEqual(["near", "far"]), wait);
    await vi.waitFor(() => expect(deployment.region("far").data("todos", "t1")?.f["v"]?.[1]).toBe(2), wait);
    deployment.stable = { far: 99, near: 99 };
    deployment.replicate("near", "far");
    loop.wake();
    await vi.waitFor(() => expect(store.entries()).toEqual([]), wait);
    expect((await store.get("todos", "t1"))?.data).toEqual({ v: 2 });
  });
});
