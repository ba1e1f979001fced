"""The Python SDK's trace context: a traceparent on every request, the app's span when it
traces."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider

from breakwater.client import Client
from breakwater.client.trace_context import add_trace_headers, trace_headers

TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-01$")


def test_without_an_app_span_each_request_starts_a_new_valid_trace() -> None:
    """No active span: a well-formed traceparent, a new trace id each time."""
    first, second = trace_headers()["traceparent"], trace_headers()["traceparent"]
    assert TRACEPARENT.fullmatch(first) and TRACEPARENT.fullmatch(second)
    assert first.split("-")[1] != second.split("-")[1]


def test_inside_an_app_span_the_request_continues_it() -> None:
    """An app that traces: the traceparent names the app's current span."""
    tracer = TracerProvider().get_tracer("the-app")
    with tracer.start_as_current_span("save note") as span:
        headers = trace_headers()
    context = span.get_span_context()
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled


async def test_a_caller_set_traceparent_is_kept() -> None:
    """A request that already has a traceparent keeps it."""
    request = httpx.Request("GET", "http://node/", headers={"traceparent": "00-x-y-01"})
    await add_trace_headers(request)
    assert request.headers["traceparent"] == "00-x-y-01"


async def test_every_sdk_request_carries_a_traceparent(tmp_path: Path) -> None:
    """The client's HTTP requests (here its sign-in and push) all send a traceparent."""
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(503)

    client = Client(
        ["http://node"],
        tmp_path / "device.db",
        http_transport=httpx.MockTransport(answer),
        transports=[],
        backoff_cap=0.2,
    )
    async with client:
        await client.collection("notes").set("n1", {"text": "hi"})
        client.sync_now()
        for _ in range(200):
            if len(seen) >= 2:
                break
            await asyncio.sleep(0.01)
    assert len(seen) >= 2
    assert all(value is not None and TRACEPARENT.fullmatch(value) for value in seen)
