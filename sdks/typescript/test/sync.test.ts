// The sync loop against a fake fetch: closing does not wait for a hanging request.
import { describe, expect, it, vi } from "vitest";

import { Client } from "../src/client.js";
import { MemoryStorage } from "../src/storage/memory.js";

describe("SyncLoop", () => {
  it("aborts a request that hangs when the client closes", async () => {
    const aborted: string[] = [];
    const hanging: typeof fetch = (input, init) =>
      new Promise((_, reject) => {
        const abort = (): void => {
          aborted.push(new URL(String(input)).pathname);
          reject(init?.signal?.reason);
        };
        if (init?.signal?.aborted) abort(); // as fetch does
        else init?.signal?.addEventListener("abort", abort);
      });
    const client = await Client.open({
      endpoints: ["http://node"],
      storage: new MemoryStorage(),
      fetch: hanging,
      requestTimeoutMs: 600_000, // far beyond the test's timeout: only the close can end it
    });
    await vi.waitFor(() => expect(client.status.state).toBe("offline"));
    await client.close();
    expect(aborted).toContain("/readyz");
  });
});
