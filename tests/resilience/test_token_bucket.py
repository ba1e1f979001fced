"""The token bucket paces admissions with a fake clock (no test sleeps)."""

from __future__ import annotations

import math

import pytest

from breakwater.resilience import TokenBucket


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_admits_a_burst_then_refuses() -> None:
    """A new bucket holds ``burst`` tokens; the next one is refused."""
    bucket = TokenBucket(rate=10, burst=3, clock=FakeClock())
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_tokens_accrue_at_the_rate_up_to_the_burst() -> None:
    """After 0.25 s at 10/s two and a half tokens are back; after an hour, only ``burst``."""
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    for _ in range(5):
        assert bucket.try_acquire()
    clock.now += 0.25
    assert bucket.tokens == pytest.approx(2.5)
    clock.now += 3600
    assert bucket.tokens == 5


def test_reservations_queue_in_arrival_order() -> None:
    """Past the burst, each reservation waits one more interval of 1/rate."""
    bucket = TokenBucket(rate=4, burst=2, clock=FakeClock())
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0.25, 0.5, 0.75])


def test_a_reservation_over_the_wait_limit_takes_nothing() -> None:
    """``reserve`` answers None when the wait is too long, and the bucket is unchanged."""
    bucket = TokenBucket(rate=1, burst=1, clock=FakeClock())
    assert bucket.reserve() == 0
    before = bucket.tokens
    assert bucket.reserve(max_wait=0.5) is None
    assert bucket.tokens == before
    assert bucket.reserve(max_wait=1.0) == pytest.approx(1.0)


def test_retry_after_says_when_a_token_is_free() -> None:
    """``retry_after`` is 0 with tokens left and the refill time without."""
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=1, clock=clock)
    assert bucket.retry_after() == 0
    assert bucket.try_acquire()
    assert bucket.retry_after() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_acquire()


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    """A clock that steps back does not mint tokens (nor remove any)."""
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=1, clock=clock)
    assert bucket.try_acquire()
    clock.now -= 50
    assert not bucket.try_acquire()


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (1, 0.5), (1, math.nan)]
)
def test_bad_settings_are_refused(rate: float, burst: float) -> None:
    """A rate that is not positive and finite, or a burst under one, is a ValueError."""
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst, clock=FakeClock())


def test_reserving_more_than_the_burst_is_refused() -> None:
    """A reservation that could never be served is a ValueError, not an endless wait."""
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=2, clock=FakeClock()).reserve(3)
