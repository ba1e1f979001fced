/**
 * Transport fallback, as in the Python SDK: WebSocket, then SSE, then long-poll. A transport the
 * endpoint refuses drops the ladder one rung; after `climbBackAfterMs` on a lower rung it tries
 * the rung above again (a flaky proxy may have been fixed). An unreachable endpoint is no reason
 * to fall back: the ladder waits (backoff with full jitter) and retries the same rung, and wakes
 * the sync loop, whose next round fails over to another endpoint (an idle device would otherwise
 * notice the loss only at its next write).
 */

import { Backoff } from "../backoff.js";
import { CursorExpired, EndpointUnavailable } from "../errors.js";
import { pause } from "../pause.js";
import { TransportRefused } from "./transport.js";
import type { StreamContext, Transport, TransportName } from "./transport.js";

export class TransportLadder {
  level = 0;
  private fellAt = 0;
  private readonly backoff: Backoff;

  constructor(
    private readonly transports: readonly Transport[],
    private readonly climbBackAfterMs: number,
    private readonly onTransport: (name: TransportName | null) => void,
    /** Wake the sync loop: the cursor expired (it pulls and resyncs) or the endpoint was lost (it fails over). */
    private readonly wakeSync: () => void,
    private readonly random: () => number = Math.random,
    private readonly clock: () => number = () => performance.now(),
  ) {
    if (transports.length === 0) throw new RangeError("at least one transport is needed");
    this.backoff = new Backoff(500, 15_000, random);
  }

  /** Keep one transport listening until `context.signal` aborts. */
  async run(context: StreamContext): Promise<void> {
    while (!context.signal.aborted) {
      const transport = this.transports[this.level] as Transport;
      this.onTransport(transport.name);
      const climb = new AbortController();
      const timer = this.level > 0 ? setTimeout(() => climb.abort(), Math.max(1, this.climbBackAfterMs - (this.clock() - this.fellAt))) : undefined;
      try {
        await transport.listen({ ...context, signal: AbortSignal.any([context.signal, climb.signal]) });
        this.backoff.reset();
        await pause(500 + this.random() * 2_500, context.signal); // protocol: spread reconnects
      } catch (error) {
        if (context.signal.aborted) return;
        if (climb.signal.aborted) {
          this.level -= 1; // climb back up and try the better transport again
        } else if (error instanceof TransportRefused && this.level + 1 < this.transports.length) {
          this.level += 1;
          this.fellAt = this.clock();
        } else {
          if (error instanceof CursorExpired || error instanceof EndpointUnavailable) this.wakeSync();
          if (error instanceof EndpointUnavailable) this.onTransport(null);
          const retryAfter = error instanceof EndpointUnavailable ? error.retryAfter : undefined;
          // Any other error (a malformed message) must not end realtime for good either.
          await pause(retryAfter !== undefined ? retryAfter * 1000 : this.backoff.next(), context.signal);
        }
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
