"""``breakwater loadtest --device wire`` end to end with tiny counts against a real node, and
its search plot (figures are not judged here: they are the benchmark's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from breakwater.bench.population import step_figures
from breakwater.chaos.population import GeneratorLimits
from breakwater.chaos.search_plot import search_svg


@pytest.mark.slow
def test_wire_devices_subscribe_write_and_are_searched(tmp_path: Path) -> None:
    """30 devices over 2 workers, 3 of them writers: every device is subscribed and still
    connected after each step, every write is acknowledged, each writer's own subscription
    receives its writes, and both CPUs are reported beside every step."""
    out = tmp_path / "run"
    run = subprocess.run(
        [sys.executable, "-m", "breakwater", "loadtest", "--device", "wire",
         "--devices", "30", "--workers", "2", "--writer-share", "0.1", "--find-max",
         "--start-rate", "10", "--max-steps", "2", "--p99-bound-ms", "1000",
         "--step-min-s", "3", "--step-max-s", "4", "--step-warmup-s", "1",
         "--step-samples", "100", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["connected"]["subscribed"] == 30
    steps = report["steps"]
    assert [s["offered"] for s in steps] == [10, 20]
    for step in steps:
        assert step["open_subscriptions"] == 30
        assert step["samples"] > 0
        assert step["changes_received"] >= step["samples"]
        assert step["node_cpu"] > 0 and step["generator_cpu"] > 0
        assert len(step["worker_cpu"]) == 2
    search = report["find_max"]
    assert [s["errors"] for s in search["steps"]] == [0, 0]
    assert search["stopped"] in {"steps", "generator"}
    assert (out / "search.svg").read_text().count('class="step') == 2
    assert "max mutations/s" in run.stdout


def test_the_search_plot_marks_each_step_and_the_bound() -> None:
    """One numbered point per step, green passed and red failed, and the bound's line."""
    steps = [
        {"offered": 25, "p99_ms": 20, "passed": True, "generator_bound": None},
        {"offered": 50, "p99_ms": 80, "passed": False, "generator_bound": "lag"},
    ]
    svg = search_svg({"bound_ms": 50, "steps": steps}, "t <&>")
    assert svg.count("<circle") == 2
    assert svg.count('fill="#27ae60"') == 1 and svg.count('fill="#c0392b"') == 1
    assert 'class="step generator-bound"' in svg
    assert "p99 bound 50 ms" in svg and "t &lt;&amp;&gt;" in svg


def answer(latencies: list[float], lags: list[float], errors: int = 0) -> dict[str, object]:
    """One worker's answer to a step."""
    return {"latencies_ms": latencies, "lags_ms": lags, "acked": len(latencies),
            "errors": errors, "changes": len(latencies), "open": 5}  # fmt: skip


def test_a_step_merges_its_workers_and_flags_the_generator() -> None:
    """The p99 is over every worker's writes together; the rate over the measured seconds; the
    generator's CPU is its workers' and the runner's; a busy worker flags the step."""
    answers = [answer([10.0] * 299, [1.0] * 299), answer([200.0], [1.0], errors=2)]
    cpu = {"node": 0.7, "runner": 0.05, "workers": [0.3, 0.2]}
    result, details = step_figures(100, 12, 2, answers, cpu, 10, 50, GeneratorLimits())
    assert (result.p99_ms, result.achieved, result.errors) == (10.0, 30.0, 2)
    assert result.generator_bound is None
    assert details["generator_cpu"] == 0.55 and details["node_cpu"] == 0.7
    assert details["open_subscriptions"] == 10 and details["samples"] == 300
    busy = {**cpu, "workers": [0.9, 0.2]}
    flagged, _ = step_figures(100, 12, 2, answers, busy, 10, 50, GeneratorLimits())
    assert flagged.generator_bound == "a worker used 90% of a core"
