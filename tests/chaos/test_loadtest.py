"""The load generator: per-second figures from the history, and a short real run."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from breakwater.chaos.device import Workload
from breakwater.chaos.history import History, MutationRecord, Operation
from breakwater.chaos.loadtest import LoadSpec, render_html, run_load, summary, timeline
from breakwater.client import Client
from breakwater.core import codec
from tests.chaos.engines import require_engines


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


def test_the_warmup_defaults_to_two_seconds_or_a_fifth() -> None:
    """Two seconds, a fifth of a run shorter than ten, or what the spec says."""
    assert LoadSpec(duration=30).warmup == 2.0
    assert LoadSpec(duration=5).warmup == 1.0
    assert LoadSpec(duration=15, warmup_s=5).warmup == 5.0


def test_summary_skips_the_warmup() -> None:
    """The sustained rate counts acknowledgements after the warm-up over the measured time."""
    history = History(operations=[push(i, i * 0.5, 0.01) for i in range(20)])
    figures = summary(history, LoadSpec(duration=10), warmup_s=2)
    assert figures["pushes"] == 16
    assert figures["mutations_per_s"] == pytest.approx(2.0)
    assert figures["errors"] == 0


@pytest.mark.parametrize("scoped", [False, True])
def test_a_workload_writes_and_syncs_its_collections(scoped: bool) -> None:
    """Scoped: a device's notes and counters are its own collections, the ones it syncs;
    shared: every device writes the same two and syncs everything."""
    workload = Workload("dev7", counters=3, rng=random.Random(4), scoped=scoped)
    written = {workload.write(kind).collection for kind in ["note", "counter"] * 20}
    read = {workload.read()[0] for _ in range(40)}
    if scoped:
        assert written == read == {"notes_dev7", "counters_dev7"}
        assert workload.collections == ("notes_dev7", "counters_dev7")
    else:
        assert written == read == {"notes", "counters"}
        assert workload.collections is None
    note = workload.write("note")
    assert note.doc_id == "dev7" and note.op in ("set", "patch")


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


async def documents_held(database: Path) -> set[tuple[str, str]]:
    """The server documents a closed device database holds."""
    async with Client(["http://unused"], database, sync=False) as device:
        return {(d.collection, d.id) for d in await device.server_documents()}


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["scoped", "shared"])
async def test_a_short_run_writes_its_report(tmp_path: Path, workload: str) -> None:
    """Five devices for three seconds against a real node: mutations acknowledged, no errors,
    report and plot written. Scoped devices hold only their own documents; shared ones hold
    every device's note."""
    spec = LoadSpec(devices=5, duration=3, interval=0.05, workload=workload)  # type: ignore[arg-type]
    report = await run_load(spec, tmp_path)
    assert report["summary"]["mutations_per_s"] > 0
    assert report["summary"]["errors"] == 0
    assert codec.loads((tmp_path / "report.json").read_bytes()) == report
    assert (tmp_path / "plot.html").read_text().count("<svg") == 3
    held = {i: await documents_held(tmp_path / "devices" / f"dev{i}.db") for i in range(5)}
    notes = {i: {doc_id for collection, doc_id in held[i] if collection.startswith("notes")}
             for i in range(5)}  # fmt: skip
    if workload == "scoped":
        for i in range(5):
            assert {c for c, _ in held[i]} <= {f"notes_dev{i}", f"counters_dev{i}"}
            assert notes[i] == {f"dev{i}"}
    else:
        assert all(notes[i] == {f"dev{k}" for k in range(5)} for i in range(5))


@pytest.mark.parametrize(
    ("option", "value", "known"),
    [("--workload", "everyone", "['scoped', 'shared']"),
     ("--store", "mysql", "['sqlite', 'postgresql']")],
)  # fmt: skip
def test_an_unknown_choice_is_one_error_line(
    tmp_path: Path, option: str, value: str, known: str
) -> None:
    """``--workload`` other than scoped or shared, or ``--store`` other than sqlite or
    postgresql, ends with exit code 1 and one Error: line, before any node starts."""
    run = loadtest_cli(option, value, "--out", str(tmp_path / "run"))
    assert run.returncode == 1
    assert run.stderr.strip() == f"Error: {option} {value!r} is not one of {known}"
    assert not (tmp_path / "run").exists()


def test_a_warmup_as_long_as_the_run_is_one_error_line(tmp_path: Path) -> None:
    """``--warmup`` must leave some of ``--duration`` to measure."""
    run = loadtest_cli("--duration", "5", "--warmup", "5", "--out", str(tmp_path / "run"))
    assert run.returncode == 1
    assert run.stderr.strip() == "Error: --warmup 5 must be shorter than --duration 5"
    assert not (tmp_path / "run").exists()


def loadtest_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``breakwater loadtest ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "breakwater", "loadtest", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_find_max_on_postgresql_runs_bounded_steps(tmp_path: Path) -> None:
    """``--find-max --store postgresql``: each step a short run on its own private PostgreSQL,
    no more steps than --max-steps, one line per step, the result table, and report.json
    with every step; the rate reported is that of the best passing step."""
    require_engines("postgres")
    run = loadtest_cli(
        "--find-max", "--store", "postgresql", "--devices", "3", "--duration", "3",
        "--start-rate", "5", "--max-steps", "2", "--p99-bound-ms", "1000",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = codec.loads((tmp_path / "report.json").read_bytes())
    result = report["find_max"]
    assert report["spec"]["store"] == "postgresql"
    assert [step["offered"] for step in result["steps"]] == [5, 10]
    passed = [step for step in result["steps"] if step["passed"]]
    assert passed, result
    assert result["max_mutations_per_s"] == passed[-1]["achieved"] > 0
    assert result["devices"] == 3
    assert result["stopped"] == "steps"
    assert run.stdout.count("/s offered: ") == 2
    assert "max mutations/s" in run.stdout
    assert sorted(p.name for p in (tmp_path / "steps").iterdir()) == ["01-5", "02-10"]
    assert (tmp_path / "steps" / "01-5" / "postgres.log").exists()
