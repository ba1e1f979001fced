/**
 * W3C trace context on every request the SDK makes (docs/sdk-js.md#tracing): a `traceparent`
 * naming the app's current span when the app says which (the `traceparent` option, e.g. from
 * `@opentelemetry/api`), else a new trace per request, so that a node that traces can follow a
 * device's write from its push to its deliveries. The SDK records no spans and needs no
 * OpenTelemetry package. Browsers cannot set headers on a WebSocket: there it goes in the
 * query string (`?traceparent=…`), which nodes read for WebSocket handshakes.
 */

import type { Fetch } from "./node-api.js";

/** The app's current trace context as a `traceparent` value, or `undefined` for a new trace. */
export type TraceparentSource = () => string | undefined;

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

function hex(bytes: number): string {
  const values = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(values, (value) => value.toString(16).padStart(2, "0")).join("");
}

/** A `traceparent` starting a new trace, flagged sampled (nodes decide by trace id alone). */
export function newTraceparent(): string {
  let traceId = hex(16);
  while (/^0+$/.test(traceId)) traceId = hex(16);
  let spanId = hex(8);
  while (/^0+$/.test(spanId)) spanId = hex(8);
  return `00-${traceId}-${spanId}-01`;
}

/** The `traceparent` for the next request: the app's, when it gives a well-formed one. */
export function traceparentFrom(source: TraceparentSource | undefined): string {
  const fromApp = source?.();
  return fromApp !== undefined && TRACEPARENT.test(fromApp) ? fromApp : newTraceparent();
}

/** `fetchFn` with a `traceparent` header on every request that has none. */
export function withTraceContext(fetchFn: Fetch, source?: TraceparentSource): Fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (!headers.has("traceparent")) headers.set("traceparent", traceparentFrom(source));
    return fetchFn(input, { ...init, headers });
  };
}
