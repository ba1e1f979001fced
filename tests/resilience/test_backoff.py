"""Exponential backoff with full jitter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakwater.resilience import Backoff


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    """Attempt n may wait up to base * 2**n, never more than the cap."""
    backoff = Backoff(base=0.1, cap=1.0)
    assert [backoff.ceiling(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_scales_the_ceiling_by_the_random_draw() -> None:
    """Each delay is the draw times the attempt's ceiling, and the attempts are counted."""
    draws = iter([1.0, 0.5, 0.0, 0.25])
    backoff = Backoff(base=1.0, cap=100.0, rand=lambda: next(draws))
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 1.0, 0.0, 2.0]
    assert backoff.attempt == 4


def test_reset_starts_over_from_the_base() -> None:
    """After a success the next wait is at most ``base`` again."""
    backoff = Backoff(base=0.5, cap=8.0, rand=lambda: 1.0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.0, max_value=1.0))
def test_every_delay_is_within_zero_and_the_cap(attempts: int, draw: float) -> None:
    """Whatever the attempt count, a delay lies in [0, cap] (no overflow for huge counts)."""
    backoff = Backoff(base=0.2, cap=5.0, rand=lambda: draw, attempt=attempts)
    assert 0.0 <= backoff.next_delay() <= 5.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_bad_settings_are_refused(base: float, cap: float) -> None:
    """A non-positive base or a cap below the base is a ValueError."""
    with pytest.raises(ValueError):
        Backoff(base=base, cap=cap)
