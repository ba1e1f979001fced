"""A server span per HTTP request, child of the caller's W3C ``traceparent`` (ADR 0028).

Installed outside the request observer only when the node traces, so the access log line of a
request carries its trace and span ids, and a node that does not trace has no such layer at
all. A malformed ``traceparent`` is ignored (a new trace starts), never refused: W3C Trace
Context asks receivers to restart the trace rather than fail the request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from opentelemetry.trace import Span, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakwater.obs.tracing import Tracing, attach, detach

Traced = tuple[Span, object]
"""A recording span and the token that restores the context before it."""
_PROPAGATED = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


def trace_headers(scope: Scope) -> dict[str, str]:
    """The request's ``traceparent`` and ``tracestate`` headers (latin-1, as HTTP has them)."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = _PROPAGATED.get(name)
        if key is not None:
            found[key] = value.decode("latin-1")
    return found


def trace_query(scope: Scope) -> dict[str, str]:
    """``traceparent`` and ``tracestate`` from the query string: browsers cannot set headers on
    a WebSocket, so the TypeScript SDK sends them there."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), max_num_fields=32)
    return {key: values[0] for key, values in query.items() if key in _PROPAGATED.values()}


class RequestSpans:
    """The server span of one HTTP request, current while it is handled: the one implementation
    that :class:`TraceRequests` and the node's edge both call."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    def begin(self, scope: Scope) -> Traced | None:
        """Start ``scope``'s span and make it current; None when the sampler dropped the trace
        (nothing below records, nothing needs the context)."""
        method = scope["method"]
        parent = self.tracing.extract(trace_headers(scope))
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"]}
        span = self.tracing.start_server_span(method, parent, attributes)
        if not span.is_recording():
            return None
        return span, attach(self.tracing.in_span(span, parent))

    @staticmethod
    def end(traced: Traced, scope: Scope, status: int, error: BaseException | None = None) -> None:
        """End the span of a request answered with ``status`` (or failed with ``error``),
        named for its route template when it reached a route."""
        span, token = traced
        if error is not None:
            span.record_exception(error)
        route = getattr(scope.get("route"), "path", None)
        if route is not None:
            span.update_name(f"{scope['method']} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(StatusCode.ERROR)
        span.end()
        detach(token)


class TraceRequests:
    """Wraps every HTTP request in a server span named for its route template."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing
        self.spans = RequestSpans(tracing)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._handshake(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        traced = self.spans.begin(scope)
        if traced is None:
            await self.app(scope, receive, send)
            return
        status = 500
        error: BaseException | None = None

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except BaseException as failure:
            error = failure
            raise
        finally:
            self.spans.end(traced, scope, status, error)

    async def _handshake(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A realtime connection gets a span for its handshake only (a span as long as the
        connection would be hours long); its deliveries have spans of their own."""
        carrier = trace_headers(scope) or trace_query(scope)
        attributes: dict[str, Any] = {"url.path": scope["path"]}
        span = self.tracing.start_server_span(
            f"WEBSOCKET {scope['path']}", self.tracing.extract(carrier), attributes
        )

        async def send_observed(message: Message) -> None:
            if span.is_recording() and message["type"] in ("websocket.accept", "websocket.close"):
                span.set_attribute("breakwater.accepted", message["type"] == "websocket.accept")
                span.end()
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            if span.is_recording():
                span.end()
