"""When the cyclic garbage collector may pause the node.

A full collection walks every tracked object: each open realtime connection keeps about a
hundred (most of them in uvicorn and the ``websockets`` protocol), so with a few thousand
connections a full collection stops the event loop for a few hundred milliseconds on a small
machine (measured: 100-300 ms at 2,000 connections on 2 slow cores). CPython starts one each
time the long-lived heap has grown by a quarter, which is exactly what a reconnect storm does,
several times in a row.

So the node (1) freezes what exists once it has started (modules, the app: never garbage) so
that full collections skip it, and (2) postpones full collections while a storm is being
admitted: young objects are still collected, and the postponed full collection runs once
admissions are quiet again, or after ``max_defer`` seconds at most.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

QUIET_SECONDS = 2.0
"""Admissions must have been unpaced this long before full collections resume."""
NEVER = 2**31 - 1


class CollectorPolicy:
    """Freezes startup objects and postpones full collections during storms (bounded)."""

    def __init__(
        self,
        max_defer: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        get_threshold: Callable[[], tuple[int, int, int]] = gc.get_threshold,
        set_threshold: Callable[..., None] = gc.set_threshold,
        freeze: Callable[[], None] = gc.freeze,
    ) -> None:
        self.max_defer = max_defer
        self._clock = clock
        self._get_threshold = get_threshold
        self._set_threshold = set_threshold
        self._freeze = freeze
        self._saved: tuple[int, int, int] | None = None
        self._since = 0.0
        self._last_storm = 0.0
        self.deferrals = 0

    @property
    def deferring(self) -> bool:
        """True while full collections are postponed."""
        return self._saved is not None

    def freeze_startup(self) -> None:
        """Exclude every object that exists now from future collections."""
        self._freeze()

    def storm(self) -> None:
        """An admission had to wait for its turn: postpone full collections."""
        now = self._clock()
        self._last_storm = now
        if self._saved is None:
            self._saved = self._get_threshold()
            self._since = now
            self.deferrals += 1
            young, middle, _ = self._saved
            self._set_threshold(young, middle, NEVER)

    def tick(self) -> None:
        """Resume full collections once admissions are quiet, or the deferral is too long."""
        if self._saved is None:
            return
        now = self._clock()
        if now - self._last_storm >= QUIET_SECONDS or now - self._since >= self.max_defer:
            self._set_threshold(*self._saved)
            self._saved = None
