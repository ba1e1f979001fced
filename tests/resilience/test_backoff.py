"""Backoff with full jitter: waits grow exponentially, stay under the cap, and reset."""

from __future__ import annotations

import pytest

from breakwater.resilience import Backoff


def test_ceiling_doubles_until_the_cap() -> None:
    """The n-th wait's upper bound is base * 2**n, never above the cap."""
    backoff = Backoff(base=0.1, cap=1.0, random=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_spreads_waits_between_zero_and_the_ceiling() -> None:
    """The wait is the random fraction of the ceiling (0 is possible: full jitter)."""
    values = iter([0.0, 0.5])
    backoff = Backoff(base=2.0, cap=100.0, random=lambda: next(values))
    assert backoff.next_delay() == 0.0
    assert backoff.next_delay() == pytest.approx(2.0)


def test_reset_starts_again_from_base() -> None:
    """After a success the next wait is bounded by base again."""
    backoff = Backoff(base=0.5, cap=10.0, random=lambda: 1.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.5)


def test_many_attempts_do_not_overflow() -> None:
    """Thousands of failures still give a wait at the cap."""
    backoff = Backoff(base=0.1, cap=3.0, random=lambda: 1.0)
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 3.0


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (2, 1), (-1, 5)])
def test_bad_settings_are_refused(base: float, cap: float) -> None:
    """base must be positive and not above cap."""
    with pytest.raises(ValueError):
        Backoff(base=base, cap=cap)
