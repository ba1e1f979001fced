"""Tracing fixtures: nodes whose spans are recorded in memory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from breakwater.config import Config
from breakwater.obs.tracing import Tracing, build_tracing
from breakwater.obs.tracing_settings import TracingSettings
from breakwater.server.app import create_app


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Where the traced nodes of a test put their finished spans."""
    return InMemorySpanExporter()


@pytest.fixture
def make_tracing(exporter: InMemorySpanExporter) -> Iterator[Callable[..., Tracing]]:
    """A node's tracing that records every span (or a ``ratio`` of traces) in ``exporter``."""
    made: list[Tracing] = []

    def make(ratio: float = 1.0) -> Tracing:
        settings = TracingSettings(enabled=True, sampler_ratio=ratio)
        tracing = build_tracing(settings, "test-node", "local", SimpleSpanProcessor(exporter))
        made.append(tracing)
        return tracing

    yield make
    for tracing in made:
        tracing.shutdown()


@pytest.fixture
async def traced_client(
    make_config: Callable[..., Config], make_tracing: Callable[..., Tracing]
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process traced node (lifespan included) and an httpx client for it."""
    app = create_app(make_config(), tracing=make_tracing())
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
        yield await stack.enter_async_context(client)


def named(spans: Any, name: str) -> list[ReadableSpan]:
    """The finished spans called ``name``."""
    return [span for span in spans if span.name == name]


def one(spans: Any, name: str) -> ReadableSpan:
    """The one finished span called ``name``."""
    found = named(spans, name)
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def push_body(doc_id: str = "d1") -> dict[str, Any]:
    """A push of one mutation."""
    return {
        "client_id": "c1",
        "mutations": [
            {
                "mutation_id": f"m-{doc_id}",
                "collection": "notes",
                "id": doc_id,
                "op": "set",
                "data": {"text": "hi"},
            }
        ],
    }
