"""W3C trace context on every request the SDK makes (docs/sdk.md#tracing, ADR 0028).

Each request carries a ``traceparent``: the app's current OpenTelemetry span when the app
traces (``opentelemetry-api`` installed and a span active), else a new trace of its own, so that
a node that traces can follow a device's write from its push to its deliveries whether or not
the app does. The SDK records no spans itself and needs no OpenTelemetry package.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, MutableMapping

import httpx

Injector = Callable[[MutableMapping[str, str]], None]


@functools.cache
def _app_injector() -> Injector | None:
    """OpenTelemetry's configured propagator when the app has it installed (looked up once)."""
    try:
        from opentelemetry.propagate import inject
    except ImportError:
        return None
    return inject


def new_traceparent() -> str:
    """A ``traceparent`` starting a new trace, flagged sampled so that a parent-based sampler
    on the way (a gateway) keeps it; Breakwater nodes decide by trace id alone."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_headers() -> dict[str, str]:
    """The ``traceparent`` (and ``tracestate``) headers for the next request."""
    headers: dict[str, str] = {}
    inject = _app_injector()
    if inject is not None:
        inject(headers)
    if "traceparent" not in headers:
        headers = {"traceparent": new_traceparent()}
    return headers


async def add_trace_headers(request: httpx.Request) -> None:
    """An httpx request hook: give ``request`` trace headers unless its caller set them."""
    if "traceparent" not in request.headers:
        request.headers.update(trace_headers())
