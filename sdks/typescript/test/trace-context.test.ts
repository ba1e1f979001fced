// W3C trace context: every request of the SDK carries a traceparent (docs/sdk-js.md#tracing).
import { describe, expect, it, vi } from "vitest";

import { Client } from "../src/client.js";
import type { StreamContext, WebSocketConstructor } from "../src/realtime/transport.js";
import { WebSocketTransport } from "../src/realtime/websocket.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { newTraceparent, withTraceContext } from "../src/trace-context.js";

const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-01$/;
const APP_SPAN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** A fetch that records each request's traceparent and answers `status`. */
function recording(seen: (string | null)[], status = 503): typeof fetch {
  return async (_input, init) => {
    seen.push(new Headers(init?.headers).get("traceparent"));
    return new Response("{}", { status });
  };
}

describe("trace context", () => {
  it("starts a new, well-formed trace for each request", () => {
    const first = newTraceparent();
    const second = newTraceparent();
    expect(first).toMatch(TRACEPARENT);
    expect(second).toMatch(TRACEPARENT);
    expect(first.split("-")[1]).not.toBe(second.split("-")[1]);
  });

  it("adds a traceparent unless the request has one, from the app when it gives one", async () => {
    const seen: (string | null)[] = [];
    const fetchFn = withTraceContext(recording(seen));
    await fetchFn("http://node/v1/sync/pull", { headers: { Authorization: "Bearer t" } });
    await fetchFn("http://node/v1/sync/pull", { headers: { traceparent: APP_SPAN } });
    await withTraceContext(recording(seen), () => APP_SPAN)("http://node/v1/sync/pull");
    await withTraceContext(recording(seen), () => "not-a-traceparent")("http://node/v1/sync/pull");
    expect(seen[0]).toMatch(TRACEPARENT);
    expect(seen[1]).toBe(APP_SPAN);
    expect(seen[2]).toBe(APP_SPAN);
    expect(seen[3]).toMatch(TRACEPARENT); // a malformed app value is replaced, not sent
  });

  it("keeps the request's other headers", async () => {
    const headers: Headers[] = [];
    const fetchFn = withTraceContext(async (_input, init) => {
      headers.push(new Headers(init?.headers));
      return new Response("{}");
    });
    await fetchFn("http://node/", { headers: { Authorization: "Bearer t" } });
    expect(headers[0]?.get("authorization")).toBe("Bearer t");
  });

  it("sends a traceparent on every request of a client, pushes included", async () => {
    const seen: (string | null)[] = [];
    const paths: string[] = [];
    const fetchFn: typeof fetch = async (input, init) => {
      const path = new URL(String(input)).pathname;
      paths.push(path);
      return recording(seen, path === "/readyz" ? 200 : 503)(input, init);
    };
    const client = await Client.open({
      endpoints: ["http://node"],
      storage: new MemoryStorage(),
      fetch: fetchFn,
      transports: ["long_poll"],
      traceparent: () => APP_SPAN,
      backoffBaseMs: 10,
      backoffCapMs: 20,
    });
    await client.collection("notes").set("n1", { text: "hi" });
    await vi.waitFor(() => expect(paths).toContain("/v1/sync/push"));
    await client.close();
    expect(seen.length).toBe(paths.length);
    expect(seen.every((value) => value === APP_SPAN)).toBe(true);
  });

  it("puts the traceparent in a WebSocket's URL (browsers cannot set its headers)", async () => {
    const urls: string[] = [];
    class RefusedSocket {
      readonly CONNECTING = 0;
      readonly OPEN = 1;
      readyState = 0;
      onopen: (() => void) | null = null;
      onmessage: (() => void) | null = null;
      onclose: (() => void) | null = null;
      onerror: (() => void) | null = null;
      constructor(url: string) {
        urls.push(url);
        setTimeout(() => {
          this.readyState = 3;
          this.onclose?.();
        });
      }
      send(): void {}
      close(): void {}
    }
    const context: StreamContext = {
      baseUrl: "http://node",
      fetch: async () => new Response("{}"),
      headers: async () => ({ Authorization: "Bearer token-1" }),
      signal: new AbortController().signal,
      idleTimeoutMs: 60_000,
      longPollWaitMs: 1_000,
      requestTimeoutMs: 1_000,
      collections: null,
      cursor: () => "",
      notify: async () => {},
    };
    const transport = new WebSocketTransport(RefusedSocket as unknown as WebSocketConstructor, () => APP_SPAN);
    await expect(transport.listen(context)).rejects.toThrow();
    const query = new URL(urls[0] ?? "").searchParams;
    expect(query.get("traceparent")).toBe(APP_SPAN);
    expect(query.get("access_token")).toBe("token-1");
  });
});
