"""JSON log lines name the trace and span they were logged in (a node that traces)."""

from __future__ import annotations

import json
import subprocess
import sys

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


# A process that configures the node's logging as `breakwater serve` does with tracing on.
CONFIGURED = """
from opentelemetry.sdk.trace import TracerProvider

from breakwater.obs.access_log import log_request
from breakwater.obs.logging import configure, get_logger

configure("info", trace_ids=True)
tracer = TracerProvider().get_tracer("test")
with tracer.start_as_current_span("request") as span:
    log_request("GET", "/healthz", "/healthz", 200, 0.1, "r-1")
    context = span.get_span_context()
    print(f"ids {context.trace_id:032x} {context.span_id:016x}", flush=True)
get_logger("breakwater.access").info("outside")
"""


def test_configured_json_lines_carry_the_ids_inside_a_span_only() -> None:
    """``configure(trace_ids=True)``: the JSON line logged in a span (the access line) names it;
    others do not."""
    done = subprocess.run(
        [sys.executable, "-c", CONFIGURED], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    trace_id, span_id = next(line for line in lines if line.startswith("ids ")).split()[1:]
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    inside = next(line for line in logged if line["event"] == "request")
    outside = next(line for line in logged if line["event"] == "outside")
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
    assert "trace_id" not in outside
