"""The find-max search, driven by fake step runners: it brackets, bisects and stays bounded."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.chaos.maxrate import SearchSpec, StepResult, StepRunner, find_max


def capacity(limit: float, devices: int = 50) -> tuple[list[float], StepRunner]:
    """A fake deployment whose p99 crosses 100 ms just above ``limit`` mutations/s; the rates
    it was offered, in order."""
    offered: list[float] = []

    async def run_step(rate: float) -> StepResult:
        offered.append(rate)
        p99 = 50.0 if rate <= limit else 150.0
        return StepResult(rate, rate * 0.97, p99, errors=0, devices=devices)

    return offered, run_step


async def test_doubles_then_bisects_to_the_resolution() -> None:
    """Capacity 130/s from 25/s: 25, 50, 100, 200 (fails), then bisection until the lowest
    failing rate is within 10% of the best passing one."""
    offered, run_step = capacity(130.0)
    result = await find_max(run_step, SearchSpec())
    assert offered[:4] == [25, 50, 100, 200]
    assert offered[4:] == [150, 125, 137.5]
    assert result.stopped == "resolved"
    assert result.best is not None and result.best.offered == 125
    report = result.to_json()
    assert report["offered_per_s"] == 125
    assert report["max_mutations_per_s"] == pytest.approx(125 * 0.97)
    assert [step["passed"] for step in report["steps"]] == [
        True,
        True,
        True,
        False,
        False,
        True,
        False,
    ]


async def test_a_failing_start_halves_down_to_the_floor() -> None:
    """Below the floor nothing passes: the search stops there with no result."""
    offered, run_step = capacity(0.5)
    result = await find_max(run_step, SearchSpec(start=8))
    assert offered == [8, 4, 2, 1]
    assert (result.stopped, result.best) == ("floor", None)
    assert result.to_json()["max_mutations_per_s"] is None


@pytest.mark.parametrize(
    ("step", "passes"),
    [
        (StepResult(100, 97, 99.9, 0, 5), True),
        (StepResult(100, 97, 100.0, 0, 5), False),
        (StepResult(100, 97, 20.0, 1, 5), False),
        (StepResult(100, 79, 20.0, 0, 5), False),
    ],
)
def test_a_step_passes_under_the_bound_with_every_write_acknowledged(
    step: StepResult, passes: bool
) -> None:
    """p99 strictly under the bound, no unacknowledged write, and at least 80% of the offered
    rate acknowledged."""
    assert SearchSpec(bound_ms=100).passes(step) is passes


async def test_the_time_budget_stops_the_search() -> None:
    """No step starts that would end past max_seconds, judging by the longest step so far."""
    now = [0.0]

    async def run_step(rate: float) -> StepResult:
        now[0] += 30.0
        return StepResult(rate, rate, 10.0, 0, 5)

    result = await find_max(run_step, SearchSpec(max_seconds=100), clock=lambda: now[0])
    assert len(result.steps) == 3
    assert result.stopped == "time"
    assert now[0] <= 100


@settings(max_examples=300, deadline=None)
@given(
    limit=st.floats(min_value=0.1, max_value=10_000, allow_nan=False),
    start=st.sampled_from([5.0, 25.0, 100.0]),
    resolution=st.sampled_from([0.05, 0.1, 0.25]),
)
async def test_for_any_monotone_capacity_the_result_is_just_below_it(
    limit: float, start: float, resolution: float
) -> None:
    """Whatever the true maximum, the result never exceeds it; once resolved it is within the
    resolution of it, and the search takes no more steps than its bracket and bisection need."""
    spec = SearchSpec(start=start, resolution=resolution, max_steps=40)
    offered, run_step = capacity(limit)
    result = await find_max(run_step, spec)
    best = result.best
    bracket = math.ceil(abs(math.log2(spec.ceiling / start))) + 2
    bisect = math.ceil(math.log2(1 / resolution)) + 1
    assert len(offered) <= bracket + bisect
    if limit < spec.floor:
        assert (result.stopped, best) == ("floor", None)
    elif limit >= spec.ceiling:
        assert result.stopped == "ceiling"
        assert best is not None and best.offered == spec.ceiling
    else:
        assert result.stopped == "resolved"
        assert best is not None
        assert limit / (1 + resolution) <= best.offered <= limit


@settings(max_examples=200, deadline=None)
@given(verdicts=st.lists(st.booleans(), min_size=1, max_size=40), max_steps=st.integers(1, 30))
async def test_with_noisy_steps_the_search_stays_monotone_and_bounded(
    verdicts: list[bool], max_steps: int
) -> None:
    """Steps pass or fail at random, whatever their rate (a noisy machine): still no passing
    step is above a failing one, so the best is below every failure, and at most max_steps
    steps run."""
    answers = iter(verdicts * 40)

    async def run_step(rate: float) -> StepResult:
        return StepResult(rate, rate, 10.0 if next(answers) else 500.0, 0, 5)

    result = await find_max(run_step, SearchSpec(max_steps=max_steps))
    assert len(result.steps) <= max_steps
    passed = [s.result.offered for s in result.steps if s.passed]
    failed = [s.result.offered for s in result.steps if not s.passed]
    assert max(passed, default=0.0) < min(failed, default=math.inf)
    best = result.best
    assert (best.offered if best else None) == (max(passed) if passed else None)


async def test_a_generator_bound_step_stops_the_search_and_flags_it() -> None:
    """At 100/s the generator is the limit: the search stops there, reports the best step
    below it and says the figure is the generator's."""
    offered: list[float] = []

    async def run_step(rate: float) -> StepResult:
        offered.append(rate)
        bound = "a worker used 95% of a core" if rate >= 100 else None
        return StepResult(rate, rate, 20.0, 0, 5, generator_bound=bound)

    result = await find_max(run_step, SearchSpec())
    assert offered == [25, 50, 100]
    assert result.stopped == "generator"
    report = result.to_json()
    assert report["limited_by"] == "generator"
    assert report["steps"][-1]["generator_bound"] == "a worker used 95% of a core"
    assert (await find_max(capacity(130.0)[1], SearchSpec())).to_json()["limited_by"] == "node"
