"""Per-request observation as a plain ASGI wrapper: request id, metrics, one JSON log line."""

from __future__ import annotations

import itertools
import re
import secrets
import time

from prometheus_client.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakwater.obs.access_log import log_request
from breakwater.obs.metrics import Metrics

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# Unique per process start, then a counter: cheaper than a UUID per request.
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)


class ObserveRequests:
    """Counts, times and logs every HTTP request (never its body, query string or headers)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Each (method, route, status) series looked up once: ``labels()`` per request cost
        # as much as counting and timing it (ADR 0044). As many entries as Prometheus series.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "<unmatched>")
            method = scope["method"]
            counted, timed = self._series_of(method, route, status)
            counted.inc()
            timed.observe(elapsed)
            log_request(method, scope["path"], route, status, round(elapsed * 1000, 3), request_id)

    def _series_of(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
            self._series[key] = series
        return series


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` when it is a safe token, else a new one."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return str(value.decode())
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"
