"""A server span per HTTP request, child of the caller's W3C ``traceparent`` (ADR 0028).

Installed outside the request observer only when the node traces, so the access log line of a
request carries its trace and span ids, and a node that does not trace has no such layer at
all. A malformed ``traceparent`` is ignored (a new trace starts), never refused: W3C Trace
Context asks receivers to restart the trace rather than fail the request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from opentelemetry.trace import StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakwater.obs.tracing import Tracing, attach, detach

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


class TraceRequests:
    """Wraps every HTTP request in a server span named for its route template."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._handshake(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        parent = self.tracing.extract(trace_headers(scope))
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"]}
        span = self.tracing.start_server_span(method, parent, attributes)
        if not span.is_recording():
            # A trace the sampler dropped: nothing below records, nothing needs the context.
            await self.app(scope, receive, send)
            return
        token = attach(self.tracing.in_span(span, parent))
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except BaseException as error:
            span.record_exception(error)
            raise
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
            span.end()
            detach(token)

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
