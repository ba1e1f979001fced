/** The last resort: long-poll pulls (`GET /v1/sync/pull?wait=`), which any HTTP path passes. */

import { NodeApi } from "../node-api.js";
import type { StreamContext, Transport } from "./transport.js";

export class LongPollTransport implements Transport {
  readonly name = "long_poll";

  /** Hold a one-change pull open until something commits past the device's cursor. */
  async listen(context: StreamContext): Promise<void> {
    const api = new NodeApi(context.baseUrl, context.fetch, context.requestTimeoutMs, context.headers);
    for (;;) {
      const page = await api.pull(context.cursor(), 1, {
        waitS: context.longPollWaitMs / 1000,
        signal: context.signal,
        includeState: false,
        collections: context.collections,
      });
      if (page.changes.length > 0) await context.notify(page.cursor);
    }
  }
}
