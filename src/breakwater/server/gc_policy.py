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

That is not enough once the connections stay: with 10,000 of them the heap holds about a
million tracked objects, and CPython starts a full collection whenever a quarter of that many
objects have been promoted since the last one, promotions that the steady churn of heartbeats,
timers and requests makes every few seconds, each a stall of one to three seconds on this
machine (ADR 0053). So (3) every second the young generations are collected and what survives
is frozen: CPython's own full collections then walk only what was promoted within the last
second, not every connection again. Frozen objects are still freed by their reference counts
(which is how nearly every object here dies); only garbage *cycles* among them wait, for (4) a
rare full walk (unfreeze, collect, freeze) once the heap has doubled since the last one. The heap
is measured in pymalloc's allocated blocks (a pass over its pools, well under a millisecond):
``gc.get_freeze_count`` walks every frozen object, which with 10,000 connections is itself a
stall of tens of milliseconds.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable

QUIET_SECONDS = 2.0
"""Admissions must have been unpaced this long before full collections resume."""
NEVER = 2**31 - 1
REWALK_GROWTH = 2.0
"""The heap grows this much (in allocated blocks) before a full walk frees the cycles in it."""


class CollectorPolicy:
    """Freezes startup objects and postpones full collections during storms (bounded)."""

    def __init__(
        self,
        max_defer: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        get_threshold: Callable[[], tuple[int, int, int]] = gc.get_threshold,
        set_threshold: Callable[..., None] = gc.set_threshold,
        freeze: Callable[[], None] = gc.freeze,
        unfreeze: Callable[[], None] = gc.unfreeze,
        collect: Callable[[int], object] = gc.collect,
        heap_blocks: Callable[[], int] = sys.getallocatedblocks,
    ) -> None:
        self.max_defer = max_defer
        self._clock = clock
        self._get_threshold = get_threshold
        self._set_threshold = set_threshold
        self._freeze = freeze
        self._unfreeze = unfreeze
        self._collect = collect
        self._heap_blocks = heap_blocks
        self._walked_at = 0
        """The heap's size after the last full walk (or the startup freeze)."""
        self.walks = 0
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
        self._walked_at = self._heap_blocks()

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
        """Called every second or so: resume full collections once admissions are quiet (or the
        deferral is too long), freeze what outlived the young generations, and walk the whole
        heap once it has doubled."""
        if self._saved is not None:
            now = self._clock()
            if now - self._last_storm >= QUIET_SECONDS or now - self._since >= self.max_defer:
                self._set_threshold(*self._saved)
                self._saved = None
        self._collect(1)
        self._freeze()
        if self._saved is None and self._heap_blocks() > REWALK_GROWTH * max(self._walked_at, 1):
            self._unfreeze()
            self._collect(2)
            self._freeze()
            self.walks += 1
            self._walked_at = self._heap_blocks()
