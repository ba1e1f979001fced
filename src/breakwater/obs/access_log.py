"""The access line: one JSON line per HTTP request, rendered without structlog's processor chain.

A node logs a line for every request, and through structlog's chain (context variables, level,
an ISO timestamp, exception formatting, redaction, the renderer and the bound logger's dispatch)
that line cost a noticeable share of a single-mutation push's CPU (docs/benchmarks.md, ADR 0044).
Its fields are fixed, so once :func:`breakwater.obs.logging.configure` has installed a
:class:`AccessLog`, the line is built as one dict and rendered by one ``orjson`` call: the same
keys in the same order as structlog wrote them, its caller-made texts (method, path, request
id) still redacted by the same rules (:func:`~breakwater.obs.redact.redact_texts`), to the same
buffered sink. Context variables bound with structlog are not merged into it (the node binds
none). Until logging is
configured (tests, the node used as a library) the line goes through structlog like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from breakwater.obs.redact import redact_texts

_EVENT = "request"


class AccessLog:
    """Writes access lines to ``sink`` (``trace_ids``: with the active span's ids)."""

    def __init__(self, sink: Callable[[bytes], None], *, enabled: bool, trace_ids: bool) -> None:
        self._sink = sink
        self.enabled = enabled
        self._trace_ids = trace_ids

    def write(
        self,
        method: str,
        path: str,
        route: str,
        status: int,
        duration_ms: float,
        request_id: str,
    ) -> None:
        """Render and queue one line (nothing when the level is above ``info``)."""
        if not self.enabled:
            return
        # The route is a template of the node's own; every other text may come from the caller.
        method, path, request_id = redact_texts((method, path, request_id))
        event = {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
            "event": _EVENT,
            "level": "info",
            "timestamp": datetime.now(UTC),
        }
        if self._trace_ids:
            from breakwater.obs.tracing import current_ids

            ids = current_ids()
            if ids is not None:
                event["trace_id"], event["span_id"] = ids
        self._sink(orjson.dumps(event, option=orjson.OPT_UTC_Z))


_installed: AccessLog | None = None


def install(access_log: AccessLog | None) -> None:
    """Make ``access_log`` the one :func:`log_request` writes to (None: through structlog)."""
    global _installed
    _installed = access_log


def log_request(
    method: str, path: str, route: str, status: int, duration_ms: float, request_id: str
) -> None:
    """Log one request: method, path (never its query string), route, status, time, id."""
    installed = _installed
    if installed is not None:
        installed.write(method, path, route, status, duration_ms, request_id)
        return
    from breakwater.obs.logging import get_logger

    get_logger("breakwater.access").info(
        _EVENT,
        method=method,
        path=path,
        route=route,
        status=status,
        duration_ms=duration_ms,
        request_id=request_id,
    )
