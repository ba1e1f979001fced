"""Hybrid logical clocks.

A stamp is ``WWWWWWWWWWWWW-CCCC-node``: 13 decimal digits of wall-clock milliseconds, 4 decimal
digits of logical counter and the node id. Fixed widths make plain string comparison the clock
order, so stamps sort in SQL and JSON without decoding, and the node suffix makes ties impossible.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from breakwater.core.errors import ClockSkew, ValidationError

NODE_PATTERN = re.compile(r"^[A-Za-z0-9_.~:-]{1,64}$", re.ASCII)
STAMP_PATTERN = re.compile(r"^([0-9]{13})-([0-9]{4})-([A-Za-z0-9_.~:-]{1,64})$", re.ASCII)
MAX_COUNTER = 9999


class Stamp(NamedTuple):
    """A decoded HLC stamp."""

    wall_ms: int
    counter: int
    node: str


def encode(wall_ms: int, counter: int, node: str) -> str:
    """The sortable string form of a stamp."""
    return f"{wall_ms:013d}-{counter:04d}-{node}"


def decode(stamp: str) -> Stamp:
    """Parse a stamp, raising :class:`ValidationError` when it is malformed."""
    match = STAMP_PATTERN.fullmatch(stamp) if isinstance(stamp, str) else None
    if match is None:
        raise ValidationError(f"hlc {stamp!r} is not a valid HLC stamp")
    return Stamp(int(match[1]), int(match[2]), match[3])


def system_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class HybridClock:
    """One node's (or device's) HLC: ``now()`` for local events, ``observe()`` for received stamps.

    Thread-safe, because the HTTP loop stamps and checks while the store's writer thread observes.
    ``offset_ms`` lets a test or a chaos scenario skew this clock without touching the system time.
    """

    def __init__(
        self,
        node: str,
        *,
        max_skew_ms: int = 60_000,
        physical_ms: Callable[[], int] = system_ms,
    ) -> None:
        if not NODE_PATTERN.fullmatch(node):
            raise ValueError(f"node id {node!r} must match {NODE_PATTERN.pattern}")
        self.node = node
        self.max_skew_ms = max_skew_ms
        self.offset_ms = 0
        self._physical_ms = physical_ms
        self._wall = 0
        self._counter = 0
        self._lock = threading.Lock()

    def physical(self) -> int:
        """This clock's physical time, skew offset included."""
        return self._physical_ms() + self.offset_ms

    def now(self) -> str:
        """A new stamp greater than every stamp this clock has issued or observed."""
        with self._lock:
            physical = self.physical()
            if physical > self._wall:
                self._wall, self._counter = physical, 0
            else:
                self._advance_counter()
            return encode(self._wall, self._counter, self.node)

    def check(self, stamp: str) -> Stamp:
        """Decode ``stamp`` and refuse it if it is more than ``max_skew_ms`` ahead of this clock."""
        decoded = decode(stamp)
        if decoded.wall_ms - self.physical() > self.max_skew_ms:
            raise ClockSkew(
                f"hlc {stamp} is more than {self.max_skew_ms} ms ahead of this node's clock",
                hlc=self.now(),
            )
        return decoded

    def observe(self, stamp: str) -> None:
        """Advance past a received stamp so that later local stamps order after it."""
        decoded = decode(stamp)
        with self._lock:
            physical = self.physical()
            if decoded.wall_ms > self._wall or (
                decoded.wall_ms == self._wall and decoded.counter > self._counter
            ):
                self._wall, self._counter = decoded.wall_ms, decoded.counter
            if physical > self._wall:
                self._wall, self._counter = physical, 0

    def _advance_counter(self) -> None:
        if self._counter >= MAX_COUNTER:
            # Borrow a millisecond rather than overflow the fixed-width counter.
            self._wall += 1
            self._counter = 0
        else:
            self._counter += 1
