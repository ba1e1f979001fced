"""The device clock and stamps that no correct clock issues."""

from __future__ import annotations

from breakwater.client.clock import DeviceClock


def test_a_pulled_stamp_with_non_ascii_digits_is_not_observed() -> None:
    """A change a pre-fix node stored with such a stamp neither stops the pull nor moves the
    clock (issue 16 item 2): int() would read it as a wall time in 2001."""
    clock = DeviceClock("d-1", physical_ms=lambda: 1_700_000_000_000)
    before = clock.now()
    clock.observe("\u0661000000000000-0000-x")
    after = clock.now()
    assert after > before
    assert after.startswith("1700000000000-")
