"""The multi-region scenarios' short forms (scenarios/short/) on real local clusters: every
check of the checker across regions passes, and the faults the scenario names did happen."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.chaos.history import read_history
from breakwater.chaos.runner import run_scenario
from breakwater.chaos.scenario import load_scenario

SHORT = Path(__file__).resolve().parents[2] / "scenarios" / "short"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.mark.parametrize("path", sorted(SHORT.glob("*.yaml")), ids=lambda p: p.stem)
async def test_short_form_passes_every_check_across_regions(path: Path, tmp_path: Path) -> None:
    """The short form runs on a local cluster (a proxy on every cross-region link), and the
    checker finds no lost write, no double effect, identical documents in every region and
    device, read-your-writes and gap-free feeds; every scheduled fault was applied."""
    scenario = load_scenario(path)
    assert scenario.regions is not None
    result = await run_scenario(scenario, tmp_path)
    assert result.verdict.passed, result.verdict.render()
    history = read_history(tmp_path / "history.jsonl")
    started = [f for f in history.faults if f.action == "start" and f.fault != "offline"]
    assert len(started) == len(scenario.faults)
    assert not any("skipped" in f.params for f in history.faults), history.faults
    assert result.stats["mutations_acknowledged"] > 0


def test_every_full_scenario_has_a_short_form() -> None:
    """Each multi-region scenario in scenarios/ has its short form in scenarios/short/."""
    full = {p.stem for p in SHORT.parent.glob("*.yaml") if load_scenario(p).regions is not None}
    assert full and full == {p.stem for p in SHORT.glob("*.yaml")}
