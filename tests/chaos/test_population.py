"""The population plan: the device mix, the schedules, the workers' shares, the step length and
the generator-bound rule are what was asked for."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.chaos.population import (
    GeneratorLimits,
    PopulationSpec,
    StepPlan,
    assign_workers,
    device_mix,
    plan_devices,
    write_times,
)


@given(
    devices=st.integers(1, 5000),
    share=st.floats(0.001, 1.0),
    workers=st.integers(1, 16),
)
@settings(max_examples=60, deadline=None)
def test_the_mix_has_the_writers_asked_for_spread_over_the_workers(
    devices: int, share: float, workers: int
) -> None:
    """Exactly ``writers`` devices write, and each worker holds devices and writers within
    one of its equal share."""
    spec = PopulationSpec(devices=devices, workers=workers, writer_share=share)
    mix = device_mix(spec)
    assert len(mix) == devices
    assert sum(mix) == spec.writers == max(1, round(devices * share))
    dealt = assign_workers(plan_devices(spec), workers)
    assert sorted(p.index for plans in dealt for p in plans) == list(range(devices))
    counts = [len(plans) for plans in dealt]
    writers = [sum(p.writer for p in plans) for plans in dealt]
    assert max(counts) - min(counts) <= 1
    assert max(writers) - min(writers) <= 1


def test_writers_are_spread_over_the_connection_order() -> None:
    """A tenth of 1,000 devices write, one in every ten: not the first hundred."""
    mix = device_mix(PopulationSpec(devices=1000, writer_share=0.1))
    assert sum(mix) == 100
    assert all(sum(mix[i : i + 10]) == 1 for i in range(0, 1000, 10))


def test_connects_are_staggered_and_heartbeats_phased() -> None:
    """Devices connect one every 1/connect_rate s in index order; heartbeat phases fall inside
    one period and are not bunched (every tenth of the period holds some)."""
    spec = PopulationSpec(devices=2000, connect_rate=400, heartbeat_s=15, seed=3)
    plans = plan_devices(spec)
    assert [p.connect_at for p in plans[:3]] == [0, 1 / 400, 2 / 400]
    assert plans[-1].connect_at == pytest.approx(1999 / 400)
    assert all(0 <= p.heartbeat_phase < 15 for p in plans)
    deciles = {int(p.heartbeat_phase / 1.5) for p in plans}
    assert deciles == set(range(10))
    assert plan_devices(spec) == plans  # the same seed, the same plan


@given(rate=st.floats(5, 500), seed=st.integers(0, 1000))
@settings(max_examples=40, deadline=None)
def test_write_times_offer_the_rate(rate: float, seed: int) -> None:
    """Writes are inside the step, in order, and their count is the rate times the length
    within five standard deviations of a Poisson count."""
    seconds = 20.0
    times = write_times(rate, seconds, random.Random(seed))
    assert times == sorted(times)
    assert all(0 <= t < seconds for t in times)
    expected = rate * seconds
    assert abs(len(times) - expected) <= 5 * expected**0.5 + 1


def test_no_rate_no_writes() -> None:
    assert write_times(0, 10, random.Random(1)) == []


@given(rate=st.floats(0.1, 100_000))
def test_a_step_is_long_enough_for_its_p99_and_bounded(rate: float) -> None:
    """A step lasts between its bounds, and under the upper bound long enough that the
    measured part holds the samples asked for (20 above the p99 with the default 2,000)."""
    plan = StepPlan()
    seconds = plan.seconds(rate)
    assert plan.min_s <= seconds <= plan.max_s
    if seconds < plan.max_s:
        assert (seconds - plan.warmup_s) * rate >= plan.samples


@pytest.mark.parametrize(
    ("workers", "lag_ms", "p99_ms", "verdict"),
    [
        ([0.4, 0.5], 1.0, 30.0, None),
        ([0.4, 0.9], 1.0, 30.0, "a worker used 90% of a core"),
        ([0.4, 0.5], 12.0, 30.0, "writes left 12.0 ms late (p99)"),
        ([0.4, 0.5], 12.0, 55.0, "writes left 12.0 ms late (p99)"),
        ([0.4, 0.5], 12.0, 3000.0, None),
        ([], 0.0, 0.0, None),
    ],
)
def test_the_generator_bound_rule(
    workers: list[float], lag_ms: float, p99_ms: float, verdict: str | None
) -> None:
    """A worker busier than 85% of a core, or writes leaving more than a fifth of the bound
    late (10 ms of 50), make the step the generator's; but not a step that failed by more
    than its lag (3 s of p99 with 12 ms of lag is the node's)."""
    assert GeneratorLimits().verdict(workers, lag_ms, p99_ms, bound_ms=50) == verdict


@pytest.mark.parametrize(
    "kwargs",
    [{"devices": 0}, {"workers": 0}, {"writer_share": 0}, {"writer_share": 1.5},
     {"connect_rate": 0}, {"heartbeat_s": -1}],
)  # fmt: skip
def test_a_spec_out_of_range_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PopulationSpec(**kwargs)  # type: ignore[arg-type]
