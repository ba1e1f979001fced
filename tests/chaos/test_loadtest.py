"""The load generator: per-second figures from the history, and a short real run."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.chaos.history import History, MutationRecord, Operation
from breakwater.chaos.loadtest import LoadSpec, render_html, run_load, summary, timeline
from breakwater.core import codec


def push(op_id: int, invoked: float, took: float, outcome: str = "ok") -> Operation:
    mutation = MutationRecord(f"m{op_id}", "c", "x", "increment", {"n": 1}, "0")
    results = {mutation.mutation_id: "applied"} if outcome == "ok" else {}
    return Operation(
        op_id, "d", "push", "n1", invoked, invoked + took, outcome,  # type: ignore[arg-type]
        (mutation,), results,
    )  # fmt: skip


def test_timeline_buckets_acks_latencies_and_errors() -> None:
    """Each second counts the mutations acknowledged then, its push percentiles, its errors."""
    history = History(
        operations=[
            push(1, 0.1, 0.010),
            push(2, 0.2, 0.030),
            push(3, 1.1, 0.100, "unknown"),
            push(4, 1.5, 0.020),
        ]
    )
    rows = timeline(history, duration=2)
    assert [row["acked_per_s"] for row in rows] == [2, 1]
    assert rows[0]["p50_ms"] == pytest.approx(10, abs=0.01)
    assert rows[0]["p99_ms"] == pytest.approx(30, abs=0.01)
    assert [row["errors"] for row in rows] == [0, 1]


def test_summary_skips_the_warmup() -> None:
    """The sustained rate counts acknowledgements after the warm-up over the measured time."""
    history = History(operations=[push(i, i * 0.5, 0.01) for i in range(20)])
    figures = summary(history, LoadSpec(duration=10), warmup_s=2)
    assert figures["pushes"] == 16
    assert figures["mutations_per_s"] == pytest.approx(2.0)
    assert figures["errors"] == 0


def test_the_plot_draws_three_charts() -> None:
    """The HTML report is self-contained with one SVG per chart."""
    history = History(operations=[push(1, 0.1, 0.01)])
    report = {
        "spec": {},
        "summary": summary(history, LoadSpec(duration=1), 0),
        "timeline": timeline(history, 1),
    }
    html = render_html(report)
    assert html.count("<svg") == 3
    assert "push latency" in html


@pytest.mark.slow
async def test_a_short_run_writes_its_report(tmp_path: Path) -> None:
    """Five devices for three seconds against a real node: mutations acknowledged, no errors,
    report and plot written."""
    report = await run_load(LoadSpec(devices=5, duration=3, interval=0.05), tmp_path)
    assert report["summary"]["mutations_per_s"] > 0
    assert report["summary"]["errors"] == 0
    assert codec.loads((tmp_path / "report.json").read_bytes()) == report
    assert (tmp_path / "plot.html").read_text().count("<svg") == 3
