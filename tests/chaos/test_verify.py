"""``breakwater verify`` end to end: real nodes, proxies, process faults, devices, the checker."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from breakwater.chaos.checker import DocState, ReplicaState, check
from breakwater.chaos.history import read_history
from breakwater.chaos.processes import NodeProcess
from breakwater.chaos.runner import fresh_run_dir, node_state, run_scenario
from breakwater.chaos.scenario import load_scenario, parse_scenario
from breakwater.core import codec
from tests.chaos.engines import require_engines
from tests.conftest import free_port

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

pytestmark = pytest.mark.slow

TINY = """
name: tiny
duration: 6
topology: {nodes: 2}
devices:
  count: 4
  interval: 0.3
  offline: [{at: 1, duration: 2, devices: 2}]
faults:
  - {at: 1, kind: kill, target: n2, duration: 1}
  - {at: 3, kind: blackhole, target: n1, duration: 1, params: {direction: downstream}}
bounds: {convergence_s: 20, request_timeout_s: 1}
"""

ENGINE_OUTAGE = """
name: engine-outage-short
duration: 13
topology: {nodes: 2, store: postgresql, bus: redis}
devices: {count: 8, interval: 0.4, sync_interval: 2}
faults:
  - {at: 2, kind: engine_stop, target: postgres, duration: 3}
  - {at: 6, kind: engine_stop, target: redis, duration: 2}
  - {at: 9, kind: kill, target: n2, duration: 1.5}
bounds: {convergence_s: 20, request_timeout_s: 1}
"""

FAILOVER = """
name: postgres-failover-short
duration: 12
topology: {nodes: 2, store: postgresql, standby: sync}
devices: {count: 8, interval: 0.4, sync_interval: 1}
faults:
  - {at: 3, kind: engine_kill, target: postgres, params: {wipe: true}}
  - {at: 5, kind: promote, target: standby}
bounds: {convergence_s: 20, request_timeout_s: 1}
"""


@pytest.mark.timeout(180)
async def test_ci_scenario_passes_under_faults(tmp_path: Path) -> None:
    """The CI scenario (two nodes, 50 SDK devices, SIGKILL, pause, latency, resets) passes every
    check; every write was acknowledged in the end, and the history shows the faults hurt:
    writes held for seconds, and answers lost (the SDK's retry came back a duplicate)."""
    result = await run_scenario(load_scenario(SCENARIOS / "ci.yaml"), tmp_path)
    assert result.verdict.passed, result.verdict.render()
    history = read_history(tmp_path / "history.jsonl")
    started = Counter(f.fault for f in history.faults if f.action == "start")
    assert {"kill", "pause", "latency", "reset_peer", "offline"} <= set(started)
    writes = [op for op in history.operations if op.kind == "push"]
    assert {op.outcome for op in writes} == {"ok"}
    assert max((op.completed_at or 0.0) - op.invoked_at for op in writes) > 5
    assert any(status == "duplicate" for op in writes for status in op.results.values()), (
        "no retry of an applied mutation was seen"
    )
    assert {op.target for op in writes} == {"n1", "n2"}
    assert len(list((tmp_path / "devices").glob("dev*.db"))) == 50
    assert result.stats["mutations_acknowledged"] > 500
    assert result.stats["converged_after_s"] <= 30
    report = codec.loads((tmp_path / "report.json").read_bytes())
    assert report["verdict"]["passed"] is True


def test_cli_prints_a_table_of_verdicts(tmp_path: Path) -> None:
    """``breakwater verify FILE`` runs it, prints the verdict table and exits 0; ``breakwater
    chaos check`` judges the recorded run again, and refutes it once a write is removed."""
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    result = subprocess.run(
        [sys.executable, "-m", "breakwater", "verify", str(scenario), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for title in ("(a)", "(b)", "(c)", "(d)", "agreed"):
        assert title in result.stdout
    seconds = codec.loads((tmp_path / "tiny" / "report.json").read_bytes())["stats"]
    assert re.search(rf"│ +{seconds['converged_after_s']:.1f} s │", result.stdout)
    assert "FAIL" not in result.stdout
    assert (tmp_path / "tiny" / "history.jsonl").stat().st_size > 0
    again = chaos_check(tmp_path / "tiny")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "verdict: PASS" in again.stdout
    states = codec.loads((tmp_path / "tiny" / "replicas.json").read_bytes())
    lost = states["replicas"][0]["applied"].pop(0)
    (tmp_path / "tiny" / "replicas.json").write_bytes(codec.dumps(states))
    tampered = chaos_check(tmp_path / "tiny")
    assert tampered.returncode == 1
    assert f"{lost} " in tampered.stdout
    assert "missing from n1's feed" in tampered.stdout


def chaos_check(run: Path) -> subprocess.CompletedProcess[str]:
    """``breakwater chaos check RUN``."""
    return subprocess.run(
        [sys.executable, "-m", "breakwater", "chaos", "check", str(run)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_refuses_an_invalid_scenario_before_starting(tmp_path: Path) -> None:
    """A bad scenario: exit 1 with one Error: line naming the key; nothing runs."""
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(TINY.replace("kind: kill", "kind: meteor"))
    result = subprocess.run(
        [sys.executable, "-m", "breakwater", "verify", str(scenario), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Error: " in result.stderr
    assert "faults[0].kind = 'meteor' is not a fault" in result.stderr
    assert not (tmp_path / "tiny").exists()


async def test_a_node_that_lost_its_store_is_caught(tmp_path: Path) -> None:
    """End to end, refuted: the real history of a run, judged against a node started on an
    empty store, fails no_lost_writes (every acknowledged write missing) and convergence."""
    scenario = parse_scenario(yaml.safe_load(TINY))
    result = await run_scenario(scenario, tmp_path / "run")
    assert result.verdict.passed, result.verdict.render()
    history = read_history(tmp_path / "run" / "history.jsonl")
    blank = NodeProcess("n1", free_port(), tmp_path / "blank", log=tmp_path / "blank.log")
    await blank.start()
    try:
        empty = await node_state(blank.url, "n1", taken_at=history.operations[-1].invoked_at)
    finally:
        await blank.stop()
    device = ReplicaState("dev0", "device", {("counters", "c0"): DocState({"n": 1}, "v")})
    verdict = check(history, [empty, device], healed_at=0.0, bound_s=1000.0)
    lost = verdict.result("no_lost_writes")
    assert len(lost.anomalies) == result.stats["mutations_acknowledged"] > 0
    assert not verdict.result("convergence").passed


@pytest.mark.timeout(120)
async def test_an_engine_outage_holds_writes_and_loses_none(tmp_path: Path) -> None:
    """A shortened postgres-engine-outage: with the private PostgreSQL stopped, writes wait (the
    nodes answer 503 and the SDK retries) and are acknowledged after it returns; with Redis
    stopped and a node killed too, every check passes and the replicas agree after the heal."""
    require_engines("postgres", "redis")
    result = await run_scenario(parse_scenario(yaml.safe_load(ENGINE_OUTAGE)), tmp_path)
    assert result.verdict.passed, result.verdict.render()
    history = read_history(tmp_path / "history.jsonl")
    stops = {(f.target, f.action): f for f in history.faults if f.fault == "engine_stop"}
    assert set(stops) == {(t, a) for t in ("postgres", "redis") for a in ("start", "heal")}
    assert not any("skipped" in f.params for f in stops.values())
    down, up = stops[("postgres", "start")].at, stops[("postgres", "heal")].at
    writes = [op for op in history.operations if op.kind == "push"]
    assert {op.outcome for op in writes} == {"ok"}
    held = [op for op in writes if down < op.invoked_at < up and (op.completed_at or 0) > up]
    assert held, "no write made while PostgreSQL was down waited for it"
    assert 0 <= result.stats["converged_after_s"] <= 20
    report = codec.loads((tmp_path / "report.json").read_bytes())
    assert report["stats"]["converged_after_s"] == result.stats["converged_after_s"]
    assert "database system is ready" in (tmp_path / "postgres.log").read_text()


@pytest.mark.timeout(150)
async def test_a_lost_primary_and_a_promoted_standby_lose_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    """A shortened postgres-failover: the primary SIGKILLed with its data folder removed, the
    synchronous standby promoted; writes wait through the switch, are acknowledged on the new
    primary, every check passes, and the lost primary stays down after the heal."""
    require_engines("postgres")
    result = await run_scenario(parse_scenario(yaml.safe_load(FAILOVER)), tmp_path)
    assert result.verdict.passed, result.verdict.render()
    assert result.verdict.result("gap_free_feed").checked >= result.stats["mutations_acknowledged"]
    history = read_history(tmp_path / "history.jsonl")
    steps = {
        (f.fault, f.action): f for f in history.faults if f.fault in ("engine_kill", "promote")
    }
    assert set(steps) == {("engine_kill", "start"), ("promote", "start")}
    assert not any("skipped" in f.params for f in steps.values())
    killed, promoted = steps[("engine_kill", "start")].at, steps[("promote", "start")].at
    writes = [op for op in history.operations if op.kind == "push"]
    assert {op.outcome for op in writes} == {"ok"}
    before = [op for op in writes if (op.completed_at or 0) < killed]
    after = [op for op in writes if op.invoked_at > promoted]
    assert before and after, "writes must be acknowledged on both sides of the switch"
    assert (
        "database system is ready to accept connections" in (tmp_path / "standby.log").read_text()
    )


def test_a_run_replaces_an_earlier_runs_store_and_devices(tmp_path: Path) -> None:
    """A second run into the same directory must not find the first run's SQLite store (its
    mutations would be in the feed) or device databases; other files stay until rewritten."""
    for leftover in ("data/breakwater.db", "devices/dev0.db", "n1.log"):
        (tmp_path / leftover).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / leftover).write_text("old run")
    fresh_run_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n1.log"]
