// The event emitter: an app's listener that throws must not stop the SDK's other listeners.
import { describe, expect, it, vi } from "vitest";

import { Emitter } from "../src/events.js";

describe("Emitter", () => {
  it("calls every listener even when one throws, and reports the error as uncaught", () => {
    const deferred: (() => void)[] = [];
    const spy = vi.spyOn(globalThis, "queueMicrotask").mockImplementation((task) => deferred.push(task));
    try {
      const emitter = new Emitter<{ tick: number }>();
      const seen: number[] = [];
      emitter.on("tick", () => {
        throw new Error("app bug");
      });
      const off = emitter.on("tick", (n) => seen.push(n));
      emitter.emit("tick", 1);
      off();
      emitter.emit("tick", 2);
      expect(seen).toEqual([1]);
      expect(deferred).toHaveLength(2);
      expect(() => deferred[0]?.()).toThrow("app bug");
    } finally {
      spy.mockRestore();
    }
  });
});
