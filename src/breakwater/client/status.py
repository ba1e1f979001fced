"""The client's status board: one current :class:`Status` and the listeners told of changes."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from breakwater.client.events import Event, Listener, Status, StatusChanged

log = logging.getLogger("breakwater.client")


class StatusBoard:
    """Holds the status and fans events out to listeners (a failing listener is logged, skipped)."""

    def __init__(self) -> None:
        self.status = Status()
        self._listeners: list[Listener] = []

    def on(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; call the returned function to remove it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: Event) -> None:
        """Tell every listener."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("a client event listener failed")

    def update(self, **changes: Any) -> None:
        """Change some fields; emit :class:`StatusChanged` when anything differs."""
        new = dataclasses.replace(self.status, **changes)
        if new != self.status:
            self.status = new
            self.emit(StatusChanged(new))
