// The platform's network state: a browser's `navigator.onLine` and its events, or an assumed
// network where the platform says nothing.
import { describe, expect, it } from "vitest";

import { ASSUMED_ONLINE, platformNetwork, whileOnline } from "../src/network.js";

function browserScope(onLine: boolean): EventTarget & { navigator: { onLine: boolean } } {
  return Object.assign(new EventTarget(), { navigator: { onLine } });
}

describe("platformNetwork", () => {
  it("follows navigator.onLine and reports its online and offline events", () => {
    const scope = browserScope(true);
    const network = platformNetwork(scope);
    const heard: boolean[] = [];
    const stop = network.subscribe((online) => heard.push(online));
    scope.navigator.onLine = false;
    scope.dispatchEvent(new Event("offline"));
    expect(network.online).toBe(false);
    scope.navigator.onLine = true;
    scope.dispatchEvent(new Event("online"));
    stop();
    scope.dispatchEvent(new Event("offline"));
    expect(heard).toEqual([false, true]);
  });

  it("assumes a network where there is no navigator.onLine (Node, React Native)", () => {
    expect(platformNetwork({ navigator: {} })).toBe(ASSUMED_ONLINE);
    expect(platformNetwork({})).toBe(ASSUMED_ONLINE);
  });
});

describe("whileOnline", () => {
  it("fails a request at once while offline, without calling fetch", async () => {
    const scope = browserScope(false);
    const calls: string[] = [];
    const fetchFn = whileOnline(async (input) => {
      calls.push(String(input));
      return new Response("{}");
    }, platformNetwork(scope));
    await expect(fetchFn("http://node/v1/sync/push")).rejects.toThrow(TypeError);
    scope.navigator.onLine = true;
    expect((await fetchFn("http://node/readyz")).ok).toBe(true);
    expect(calls).toEqual(["http://node/readyz"]);
  });
});
