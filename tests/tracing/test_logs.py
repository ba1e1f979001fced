"""JSON log lines name the trace and span they were logged in (a node that traces)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from breakwater.obs.logging import add_trace_ids


def test_a_line_logged_in_a_span_names_its_trace_and_span() -> None:
    """Inside a recorded span: ``trace_id`` and ``span_id`` in hex, as OTLP backends show them."""
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        event = add_trace_ids(None, "info", {"event": "request"})
    context = span.get_span_context()
    assert event["trace_id"] == f"{context.trace_id:032x}"
    assert event["span_id"] == f"{context.span_id:016x}"


def test_a_line_logged_outside_a_span_has_no_ids() -> None:
    """Outside any span: the line is left as it was."""
    assert add_trace_ids(None, "info", {"event": "started"}) == {"event": "started"}
