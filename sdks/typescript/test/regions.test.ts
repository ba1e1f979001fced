// Region routing against two real regions: `breakwater cluster up --regions 2` (each region a node
// behind a chaos proxy for devices, replicating both ways). The device is given one URL of the
// far region; it learns the other from `GET /v1/regions`, moves to the nearest once it proved
// itself, fails over when its region is cut off, and returns home once the cut heals, with every
// write delivered and its reads never going back.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WebSocket as WsWebSocket } from "ws";

import { Client } from "../src/client.js";
import type { WebSocketConstructor } from "../src/realtime/transport.js";
import { MemoryStorage } from "../src/storage/memory.js";

const BREAKWATER = fileURLToPath(new URL("../../../.venv/bin/breakwater", import.meta.url));

interface Region {
  device: string;
  node: string;
  proxy: string;
}

function cli(...args: string[]): Promise<void> {
  const child = spawn(BREAKWATER, args, { stdio: ["ignore", "ignore", "pipe"] });
  let errors = "";
  child.stderr?.on("data", (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-4_000)));
  return new Promise((resolve, reject) =>
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`breakwater ${args.join(" ")}: exit ${String(code)}\n${errors}`)))),
  );
}

describe("two regions (breakwater cluster up --regions 2)", () => {
  const directory = mkdtempSync(join(tmpdir(), "bw-cluster-"));
  const regions: Record<string, Region> = {};
  let control = "";

  beforeAll(async () => {
    await cli("cluster", "up", "--regions", "2", "--dir", directory);
    const info = JSON.parse(readFileSync(join(directory, "cluster.json"), "utf8")) as {
      control_url: string;
      regions: Record<string, { nodes: { url: string; device_url: string; device_proxy: string }[] }>;
    };
    control = info.control_url;
    for (const [name, region] of Object.entries(info.regions)) {
      const node = region.nodes[0]!;
      regions[name] = { device: node.device_url, node: node.url, proxy: node.device_proxy };
    }
  }, 300_000);

  afterAll(async () => {
    await cli("cluster", "down", "--dir", directory);
    rmSync(directory, { recursive: true, force: true });
  }, 60_000);

  const fault = async (region: Region, kind: string, params: object): Promise<void> => {
    const answer = await fetch(`${control}/proxies/${encodeURIComponent(region.proxy)}/faults/${kind}`, { method: "PUT", body: JSON.stringify(params) });
    expect(answer.ok).toBe(true);
  };
  const heal = async (region: Region): Promise<void> => {
    expect((await fetch(`${control}/proxies/${encodeURIComponent(region.proxy)}/faults`, { method: "DELETE" })).ok).toBe(true);
  };
  const onNode = async (region: Region, id: string): Promise<unknown> => {
    const answer = await fetch(`${region.node}/v1/collections/notes/docs/${id}`);
    return answer.ok ? ((await answer.json()) as { data: unknown }).data : null;
  };

  it("starts far, settles in the nearest region, fails over when it is cut off and returns home once", { timeout: 300_000 }, async () => {
    const eu = regions["eu"]!;
    const us = regions["us"]!;
    await fault(us, "latency", { ms: 150 }); // us is far from this device
    const client = await Client.open({
      endpoints: [us.device],
      storage: new MemoryStorage(),
      WebSocket: WsWebSocket as unknown as WebSocketConstructor,
      requestTimeoutMs: 2_000,
      regionProbeIntervalMs: 200,
      probeTimeoutMs: 1_500,
      backoffBaseMs: 20,
      backoffCapMs: 300,
      breakerResetMs: 500,
      pollIntervalMs: 120_000, // changes that arrive came by realtime
    });
    try {
      const visited: string[] = [];
      const byUrl = new Map(Object.entries(regions).map(([name, r]) => [r.device, name]));
      client.on("status", ({ endpoint }) => {
        const name = endpoint === null ? undefined : byUrl.get(endpoint);
        if (name !== undefined && visited.at(-1) !== name) visited.push(name);
      });
      const shown: number[] = [];
      const notes = client.collection("notes");
      notes.watch({}, (docs) => {
        const n = docs.find((d) => d.id === "counter")?.data["n"];
        if (typeof n === "number" && shown.at(-1) !== n) shown.push(n);
      });
      const wait = { timeout: 60_000, interval: 100 };

      await vi.waitFor(() => expect(visited).toEqual(["us", "eu"]), wait); // learned eu from the directory, nearer
      await notes.set("counter", { n: 1 });
      await vi.waitFor(async () => expect(await onNode(eu, "counter")).toEqual({ n: 1 }), wait);

      await fault(eu, "blackhole", {}); // eu cut off from the device (its node and replication go on)
      await notes.set("counter", { n: 2 });
      expect((await notes.get("counter"))?.data).toEqual({ n: 2 }); // read-your-writes, offline from eu
      await vi.waitFor(() => expect(visited).toEqual(["us", "eu", "us"]), wait);
      await notes.set("counter", { n: 3 });
      await vi.waitFor(async () => expect(await onNode(us, "counter")).toEqual({ n: 3 }), wait);
      await fetch(`${us.node}/v1/collections/notes/docs/from-us`, { method: "PUT", headers: { "content-type": "application/json" }, body: '{"by":"us"}' });
      await vi.waitFor(async () => expect((await notes.get("from-us"))?.data).toEqual({ by: "us" }), wait); // realtime from us

      await heal(eu);
      await vi.waitFor(() => expect(visited).toEqual(["us", "eu", "us", "eu"]), wait);
      await vi.waitFor(() => expect(client.outbox()).toEqual([]), wait); // acknowledged and stable in both regions
      await vi.waitFor(async () => expect(await onNode(eu, "counter")).toEqual({ n: 3 }), wait);
      await new Promise((resolve) => setTimeout(resolve, 3_000)); // 15 probe rounds
      expect(visited).toEqual(["us", "eu", "us", "eu"]); // home once, no flapping
      expect(shown).toEqual([1, 2, 3]); // never an older value
    } finally {
      await client.close();
      await heal(us);
    }
  });
});
