"""Hybrid logical clocks."""

from __future__ import annotations

import pytest

from breakwater.core import hlc
from breakwater.core.errors import ClockSkew, ValidationError


class FakeTime:
    """A settable physical clock."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_stamps_sort_as_strings_in_clock_order() -> None:
    """Lexicographic order of stamps is (wall, counter, node) order."""
    stamps = [hlc.encode(w, c, n) for w, c, n in [(5, 0, "b"), (5, 1, "a"), (40, 0, "a")]]
    assert sorted(stamps) == stamps


def test_now_is_strictly_increasing_when_time_stands_still() -> None:
    """With a frozen physical clock the counter keeps stamps increasing."""
    clock = hlc.HybridClock("n1", physical_ms=FakeTime(1000))
    stamps = [clock.now() for _ in range(20_000)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_now_never_goes_back_when_time_does() -> None:
    """A physical clock moving backwards does not make stamps go back."""
    time = FakeTime(5000)
    clock = hlc.HybridClock("n1", physical_ms=time)
    first = clock.now()
    time.ms = 1000
    assert clock.now() > first


def test_observe_orders_later_local_stamps_after_remote_ones() -> None:
    """After observing a stamp from the future (within skew), local stamps sort after it."""
    clock = hlc.HybridClock("n1", physical_ms=FakeTime(1000))
    remote = hlc.encode(30_000, 7, "zz")
    clock.observe(remote)
    assert clock.now() > remote


def test_check_refuses_stamps_beyond_the_skew_window() -> None:
    """A stamp more than max_skew ahead raises ClockSkew carrying the node's own stamp."""
    clock = hlc.HybridClock("n1", max_skew_ms=60_000, physical_ms=FakeTime(1_000_000))
    clock.check(hlc.encode(1_060_000, 0, "d"))
    with pytest.raises(ClockSkew) as caught:
        clock.check(hlc.encode(1_060_001, 0, "d"))
    assert caught.value.extra["hlc"].endswith("-n1")


def test_offset_skews_the_clock() -> None:
    """offset_ms shifts the physical time that stamps use (clock-skew faults)."""
    clock = hlc.HybridClock("n1", physical_ms=FakeTime(1000))
    clock.offset_ms = 500
    assert hlc.decode(clock.now()).wall_ms == 1500


@pytest.mark.parametrize(
    "bad",
    ["", "123", "0000000001000-0000-", "0000000001000-00-a", "x" * 80, "0000000001000-0000-a b"],
)
def test_decode_refuses_malformed_stamps(bad: str) -> None:
    """Malformed stamps are a ValidationError, never a crash."""
    with pytest.raises(ValidationError):
        hlc.decode(bad)


def test_node_ids_are_validated() -> None:
    """A node id with characters outside the stamp alphabet is refused."""
    with pytest.raises(ValueError, match="node id"):
        hlc.HybridClock("bad node")
