"""Tracing off costs nothing: no span (not even FastAPI's own), no tracing layer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

from breakwater.config import Config
from breakwater.server.app import create_app

# A node that does not trace serves pushes, pulls and a realtime page without recording a
# span, even with a process-global tracer provider configured (which FastAPI's native
# telemetry would use), and without loading the node's tracing module.
NODE_WITHOUT_TRACING = textwrap.dedent(
    """
    import asyncio, sys, tempfile
    from pathlib import Path

    import httpx
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from breakwater.config import load_config
    from breakwater.server.app import create_app

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    async def main() -> None:
        data = Path(tempfile.mkdtemp())
        app = create_app(load_config(None, env={}, overrides={"data": data}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
                push = {"mutations": [{"mutation_id": "m1", "collection": "notes", "id": "n1",
                                       "op": "set", "data": {"text": "hi"}}]}
                headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
                answer = await client.post("/v1/sync/push", json=push, headers=headers)
                assert answer.status_code == 200, answer.text
                pulled = await client.get("/v1/sync/pull", params={"cursor": ""})
                assert len(pulled.json()["changes"]) == 1
            await asyncio.sleep(0.2)  # the feed follower delivers the page to the fan-out
        print("spans:", [span.name for span in exporter.get_finished_spans()])
        print("tracing module loaded:", "breakwater.obs.tracing" in sys.modules)

    asyncio.run(main())
    """
)


def test_a_node_that_does_not_trace_records_no_span() -> None:
    """Tracing off: a push, a pull and a feed delivery record no span, FastAPI's included,
    though the process has a global tracer provider."""
    result = subprocess.run(
        [sys.executable, "-c", NODE_WITHOUT_TRACING],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "spans: []" in result.stdout
    assert "tracing module loaded: False" in result.stdout


def test_a_node_that_does_not_trace_has_no_tracing_anywhere(
    make_config: Callable[..., Config],
) -> None:
    """Tracing off: no tracer on the node, its write path or its fan-out; no tracing layer."""
    app = create_app(make_config())
    node = app.state.node
    assert node.tracing is None
    assert node.writes.tracing is None
    assert node.realtime.fanout.tracing is None
    assert all(getattr(m.cls, "__name__", "") != "TraceRequests" for m in app.user_middleware)
