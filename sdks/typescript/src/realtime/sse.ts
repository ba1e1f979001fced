/**
 * Realtime over Server-Sent Events (`GET /v1/realtime/sse`), read with `fetch` streaming rather
 * than `EventSource`, so that requests carry the app's headers and a refusal's status is seen.
 */

import { BreakwaterError, EndpointUnavailable, errorForProblem } from "../errors.js";
import type { Problem } from "../errors.js";
import { bringsChanges, TransportRefused } from "./transport.js";
import type { StreamContext, Transport } from "./transport.js";

/** A timer that aborts `controller` unless `touch()` is called within `ms`. */
function idleWatch(ms: number, controller: AbortController): { touch(): void; stop(): void } {
  let timer = setTimeout(fire, ms);
  function fire(): void {
    controller.abort(new EndpointUnavailable(`realtime: nothing heard for ${ms} ms`));
  }
  return {
    touch() {
      clearTimeout(timer);
      timer = setTimeout(fire, ms);
    },
    stop() {
      clearTimeout(timer);
    },
  };
}

export class SseTransport implements Transport {
  readonly name = "sse";

  async listen(context: StreamContext): Promise<void> {
    const idle = new AbortController();
    const signal = AbortSignal.any([context.signal, idle.signal]);
    const watch = idleWatch(context.idleTimeoutMs, idle);
    try {
      const headers = { ...(context.headers ? await context.headers() : {}), accept: "text/event-stream" };
      const params = new URLSearchParams({ cursor: context.cursor() });
      if (context.collections !== null) params.set("collections", context.collections.join(","));
      const url = `${context.baseUrl}/v1/realtime/sse?${params}`;
      const response = await context.fetch(url, { headers, signal });
      if (response.status !== 200) {
        const problem = (await response.json().catch(() => ({}))) as Partial<Problem>;
        const error = errorForProblem(response.status, problem, Number(response.headers.get("retry-after")) || undefined);
        if (error instanceof EndpointUnavailable || response.status === 410) throw error;
        throw new TransportRefused(`SSE refused with ${response.status}`);
      }
      if (!response.headers.get("content-type")?.startsWith("text/event-stream") || response.body === null) {
        throw new TransportRefused("SSE answer is not an event stream");
      }
      await this.read(response.body, context, watch.touch);
    } catch (error) {
      if (context.signal.aborted) throw context.signal.reason;
      if (idle.signal.aborted) throw idle.signal.reason;
      if (error instanceof TransportRefused || error instanceof BreakwaterError) throw error;
      throw new EndpointUnavailable(`SSE: ${String(error)}`);
    } finally {
      watch.stop();
    }
  }

  /** Read events until the stream ends or says `reconnect`; wake the sync loop on new changes. */
  private async read(body: ReadableStream<Uint8Array>, context: StreamContext, touch: () => void): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "message";
    let data = "";
    const reader = body.getReader(); // not `for await`: Safari's streams are not async-iterable
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      touch();
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
        else if (line === "") {
          if (event === "changes" && data) {
            const message = JSON.parse(data) as { changes?: unknown[]; cursor?: string };
            if (bringsChanges(message, context.cursor())) await context.notify(message.cursor as string);
          } else if (event === "error" && data) {
            const problem = ((JSON.parse(data) as { error?: Partial<Problem> }).error ?? {}) as Partial<Problem>;
            throw errorForProblem(problem.status ?? 400, problem);
          } else if (event === "reconnect") {
            return;
          }
          event = "message";
          data = "";
        }
      }
    }
  }
}
