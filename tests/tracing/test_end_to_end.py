"""One device write followed from the SDK's request through push and commit to its realtime
delivery to another device, with the spans linked (issue 21)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from breakwater.client import Client
from breakwater.config import Config
from breakwater.obs.tracing import Tracing
from breakwater.server.app import create_app
from breakwater.server.runner import uvicorn_config
from tests.client.conftest import make_device, wait_status
from tests.conftest import free_port
from tests.tracing.conftest import named, one

pytestmark = pytest.mark.slow
__all__ = ["make_device"]  # the SDK device fixture, shared with the client tests


@pytest.fixture
async def traced_url(
    make_config: Callable[..., Config], make_tracing: Callable[..., Tracing]
) -> AsyncIterator[str]:
    """A traced node served by uvicorn on loopback (real WebSockets)."""
    port = free_port()
    config = make_config(port=port)
    app = create_app(config, tracing=make_tracing())
    server = uvicorn.Server(uvicorn_config(app, config))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    await app.state.node.realtime.drain(2.0)
    server.should_exit = True
    await asyncio.wait_for(task, 15)


async def delivered(
    exporter: InMemorySpanExporter, write: ReadableSpan, seconds: float = 5
) -> ReadableSpan:
    """The realtime delivery span linked to ``write`` (waiting for it to end)."""
    async with asyncio.timeout(seconds):
        while True:
            for span in named(exporter.get_finished_spans(), "realtime.deliver"):
                if any(link.context.span_id == write.context.span_id for link in span.links):
                    return span
            await asyncio.sleep(0.02)


async def written(exporter: InMemorySpanExporter, seconds: float = 5) -> ReadableSpan:
    """The one write span (waiting for the push to finish)."""
    async with asyncio.timeout(seconds):
        while not named(exporter.get_finished_spans(), "write"):  # noqa: ASYNC110  (spans)
            await asyncio.sleep(0.02)
    return one(exporter.get_finished_spans(), "write")


async def test_a_device_write_is_traced_to_its_realtime_delivery(
    traced_url: str, make_device: Callable[..., Any], exporter: InMemorySpanExporter
) -> None:
    """The SDK's push carries a traceparent (the server span has a remote parent), the write
    and its commit phases are in that trace, and the delivery to the subscribed device is a
    span linked to the write, in the write's trace."""
    phone: Client = await make_device(traced_url, "phone", poll_interval=600, transports=[])
    tablet: Client = await make_device(traced_url, "tablet", poll_interval=600)
    await wait_status(tablet, lambda status: status.transport == "websocket", 15)
    updates = tablet.collection("notes").watch()
    assert await anext(updates) == []

    await phone.collection("notes").set("n1", {"text": "hello"})
    async with asyncio.timeout(15):
        async for documents in updates:
            if [d.id for d in documents] == ["n1"]:
                break

    write = await written(exporter)
    spans = exporter.get_finished_spans()
    pushes = [
        s
        for s in named(spans, "POST /v1/sync/push")
        if s.context.span_id == (write.parent.span_id if write.parent else None)
    ]
    assert len(pushes) == 1
    push = pushes[0]
    assert push.parent is not None and push.parent.is_remote  # the SDK sent a traceparent
    assert push.context.trace_id == push.parent.trace_id == write.context.trace_id
    commit = one(spans, "write.commit")
    assert commit.parent is not None and commit.parent.span_id == write.context.span_id
    delivery = await delivered(exporter, write)
    assert delivery.context.trace_id == write.context.trace_id  # one trace, write to delivery
    assert delivery.attributes is not None
    assert delivery.attributes["breakwater.subscribers"] == 1
    assert delivery.attributes["breakwater.changes"] == 1
