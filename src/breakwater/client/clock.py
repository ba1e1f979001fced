"""The device's hybrid logical clock, which a node's ``clock_skew`` answer can correct.

A device's physical clock may run ahead of the servers'. Stamps from such a clock are refused
(``clock_skew``); the SDK then calls :meth:`DeviceClock.correct` with the node's stamp, which
shifts this clock's physical time by the measured offset and restarts it just after the node's
stamp, so that the re-stamped mutations are accepted and still order after what the node has.
"""

from __future__ import annotations

from collections.abc import Callable

from breakwater.core import hlc as hlc_mod
from breakwater.core.errors import ValidationError
from breakwater.core.hlc import HybridClock


class DeviceClock:
    """A :class:`HybridClock` plus a correction offset (the store keeps it across restarts)."""

    def __init__(
        self, node: str, physical_ms: Callable[[], int] = hlc_mod.system_ms, offset_ms: int = 0
    ) -> None:
        self.node = node
        self._physical_ms = physical_ms
        self.offset_ms = offset_ms
        self._clock = self._new_clock()

    def _new_clock(self) -> HybridClock:
        clock = HybridClock(self.node, physical_ms=self._physical_ms)
        clock.offset_ms = self.offset_ms
        return clock

    def now(self) -> str:
        """A new stamp, greater than every stamp issued or observed since the last correction."""
        return self._clock.now()

    def observe(self, stamp: str) -> None:
        """Advance past a received stamp (a node's clock, a pulled change).

        A stamp that does not decode is not observed: no clock issues one, but a store written
        before nodes refused non-ASCII digits may still hand one out, and refusing the whole
        pulled page for it would stop this device's sync for good.
        """
        try:
            self._clock.observe(stamp)
        except ValidationError:
            return

    def correct(self, node_stamp: str) -> None:
        """Re-base on a node's clock after a ``clock_skew`` refusal (forgets the future stamps)."""
        node_wall = hlc_mod.decode(node_stamp).wall_ms
        self.offset_ms = min(0, node_wall - self._physical_ms())
        self._clock = self._new_clock()
        self._clock.observe(node_stamp)
