"""Server spans: one per request, named for its route, child of the caller's traceparent."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from breakwater.config import Config
from breakwater.obs.tracing import Tracing, build_tracing
from breakwater.obs.tracing_settings import TracingSettings
from breakwater.server.app import create_app
from tests.tracing.conftest import named, one, push_body

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


async def test_a_push_has_a_server_span_with_its_route_and_status(
    traced_client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    """POST /v1/sync/push: a server span named for the route template, with the status."""
    response = await traced_client.post("/v1/sync/push", json=push_body())
    assert response.status_code == 200
    server = one(exporter.get_finished_spans(), "POST /v1/sync/push")
    assert server.kind is SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/sync/push"
    assert server.attributes["http.response.status_code"] == 200


async def test_the_write_and_its_commit_phases_are_children_of_the_request(
    traced_client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    """A push's write span has queue wait, merge and commit children, in that order."""
    await traced_client.post("/v1/sync/push", json=push_body())
    spans = exporter.get_finished_spans()
    server = one(spans, "POST /v1/sync/push")
    write = one(spans, "write")
    assert write.parent is not None and write.parent.span_id == server.context.span_id
    phases = [one(spans, f"write.{name}") for name in ("queue_wait", "merge", "commit")]
    for phase in phases:
        assert phase.parent is not None and phase.parent.span_id == write.context.span_id
    times = [(p.start_time or 0, p.end_time or 0) for p in phases]
    assert all(start <= end for start, end in times)
    assert times[0][1] <= times[1][0] and times[1][1] <= times[2][0]
    assert write.attributes is not None and write.attributes["breakwater.mutations"] == 1


async def test_a_caller_traceparent_is_the_parent_of_the_server_span(
    traced_client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    """The request's span continues the caller's trace, under the caller's span."""
    headers = {
        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        "tracestate": "vendor=opaque",
    }
    await traced_client.post("/v1/sync/push", json=push_body(), headers=headers)
    server = one(exporter.get_finished_spans(), "POST /v1/sync/push")
    assert format(server.context.trace_id, "032x") == CALLER_TRACE
    assert server.parent is not None and server.parent.is_remote
    assert format(server.parent.span_id, "016x") == CALLER_SPAN
    assert server.context.trace_state.get("vendor") == "opaque"


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{'0' * 32}-{CALLER_SPAN}-01",  # an all-zero trace id is invalid
        f"00-{CALLER_TRACE}-{'0' * 16}-01",  # an all-zero span id is invalid
        f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01",  # version ff is forbidden
        f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01",  # upper-case hex is not allowed
        "00-\u00e9" + "a" * 31 + f"-{CALLER_SPAN}-01",
    ],
)
async def test_a_malformed_traceparent_is_ignored_not_refused(
    traced_client: httpx.AsyncClient, exporter: InMemorySpanExporter, traceparent: str
) -> None:
    """A malformed traceparent: the request succeeds and starts a new trace (W3C)."""
    headers = {b"traceparent": traceparent.encode()}  # raw bytes, as a device may send them
    response = await traced_client.post("/v1/sync/push", json=push_body(), headers=headers)
    assert response.status_code == 200
    server = one(exporter.get_finished_spans(), "POST /v1/sync/push")
    assert server.parent is None
    assert format(server.context.trace_id, "032x") != CALLER_TRACE


async def test_a_pull_span_names_what_the_pull_returned(
    traced_client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    """GET /v1/sync/pull: its server span counts the changes it returned."""
    await traced_client.post("/v1/sync/push", json=push_body())
    response = await traced_client.get("/v1/sync/pull", params={"cursor": ""})
    assert len(response.json()["changes"]) == 1
    pull = one(exporter.get_finished_spans(), "GET /v1/sync/pull")
    assert pull.attributes is not None
    assert pull.attributes["breakwater.changes"] == 1
    assert pull.attributes["breakwater.has_more"] is False


async def test_an_error_answer_marks_only_server_errors(
    traced_client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    """A 4xx is the caller's fault: its span keeps an unset status (not an error)."""
    response = await traced_client.post("/v1/sync/push", json={"mutations": "no"})
    assert response.status_code == 400
    server = one(exporter.get_finished_spans(), "POST /v1/sync/push")
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 400
    assert server.status.status_code is StatusCode.UNSET
    assert named(exporter.get_finished_spans(), "write") == []


async def test_a_ratio_of_zero_records_nothing_even_when_the_caller_says_sampled(
    make_config: Callable[..., Config],
    make_tracing: Callable[..., Tracing],
    exporter: InMemorySpanExporter,
) -> None:
    """Sampling is decided by trace id: a client's ``sampled`` flag cannot force recording."""
    app = create_app(make_config(), tracing=make_tracing(ratio=0.0))
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
        )
        headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
        response = await client.post("/v1/sync/push", json=push_body(), headers=headers)
    assert response.status_code == 200
    assert exporter.get_finished_spans() == ()


def test_a_node_remembers_a_bounded_number_of_writes() -> None:
    """Only the newest ``remembered`` write contexts are kept for linking deliveries."""
    tracing = build_tracing(
        TracingSettings(True), "n", "r", SimpleSpanProcessor(InMemorySpanExporter())
    )
    tracing.remembered = 2
    for seq in (1, 2, 3):
        with tracing.span("write"):
            tracing.remember([("o", seq)])
    assert tracing.write_context(("o", 1)) is None
    assert tracing.write_context(("o", 2)) is not None and tracing.write_context(("o", 3))
    context = tracing.write_context(("o", 3))
    assert context is not None
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert tracing.traces_of([("o", 1), ("o", 3)]) == {traceparent: [("o", 3)]}
    tracing.shutdown()


def test_a_replicated_apply_joins_the_origin_writes_trace_and_so_do_its_deliveries() -> None:
    """Replication: the origin names its writes' traceparents per position; the receiving
    region's apply is a child of that write (one span per write), a malformed value is
    skipped, and the region's delivery of the change is in the same trace."""
    exporter = InMemorySpanExporter()
    origin = build_tracing(TracingSettings(True), "eu-1", "eu", SimpleSpanProcessor(exporter))
    with origin.span("write"):
        origin.remember([("eu~1", 7), ("eu~1", 8)])
    traces = origin.traces_of([("eu~1", 6), ("eu~1", 7), ("eu~1", 8)])
    assert list(traces.values()) == [[("eu~1", 7), ("eu~1", 8)]]  # 6 was not written here
    region = build_tracing(TracingSettings(True), "us-1", "us", SimpleSpanProcessor(exporter))
    region.replicated({**traces, "malformed": [("eu~1", 9)]}, 1_000, 2_000)
    delivery = region.delivery_span("realtime.deliver", [("eu~1", 8)])
    assert delivery is not None
    delivery.end()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    write, applied = spans["write"].context, spans["replication.apply"]
    assert [s.name for s in exporter.get_finished_spans()].count("replication.apply") == 1
    assert applied.parent is not None and applied.parent.span_id == write.span_id
    assert applied.context.trace_id == write.trace_id
    assert (applied.start_time, applied.end_time) == (1_000, 2_000)
    assert applied.attributes is not None and applied.attributes["breakwater.changes"] == 2
    assert spans["realtime.deliver"].context.trace_id == write.trace_id
    assert spans["realtime.deliver"].links[0].context.span_id == applied.context.span_id
    assert region.delivery_span("realtime.deliver", [("eu~1", 9)]) is None
    origin.shutdown()
    region.shutdown()
