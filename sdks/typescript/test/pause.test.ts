// The sync loop's wait: a timer that any of its signals ends early.
import { describe, expect, it } from "vitest";

import { pause } from "../src/pause.js";

/** Whether `wait` has ended once the tasks already queued have run (no clock involved). */
async function ended(wait: Promise<void>): Promise<boolean> {
  return Promise.race([wait.then(() => true), new Promise<boolean>((resolve) => setImmediate(() => resolve(false)))]);
}

describe("pause", () => {
  it("ends when any of its signals aborts, the last one too", async () => {
    const first = new AbortController();
    const second = new AbortController();
    const wait = pause(60_000, first.signal, second.signal);
    expect(await ended(wait)).toBe(false);
    second.abort();
    expect(await ended(wait)).toBe(true);
  });

  it("ends at once when a signal has already aborted", async () => {
    expect(await ended(pause(60_000, new AbortController().signal, AbortSignal.abort()))).toBe(true);
  });
});
