"""Wakes live queries when a collection of the local view changed (a local write or a sync)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class ChangeSignal:
    """One :class:`asyncio.Event` per collection, replaced each time it fires.

    A watcher takes the event *before* it queries, so a change committed between its query and
    its wait still wakes it: nothing is missed.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def waiter(self, collection: str) -> asyncio.Event:
        """The event the next change of ``collection`` sets."""
        return self._events.setdefault(collection, asyncio.Event())

    def changed(self, collections: Iterable[str]) -> None:
        """Wake every watcher of ``collections``."""
        for name in collections:
            event = self._events.pop(name, None)
            if event is not None:
                event.set()
