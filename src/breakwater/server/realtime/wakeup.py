"""A one-waiter wake-up flag: what ``asyncio.Event`` does for a connection's sender, cheaper.

Every change delivered to every subscriber wakes a sender, so this is on the hottest path of
the fan-out. ``asyncio.Event`` keeps a deque of waiters and looks its loop up on every wait;
a connection has exactly one waiter, its pump, so one future is enough.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    """``set``/``clear``/``wait`` like ``asyncio.Event``, for at most one waiter at a time."""

    __slots__ = ("_flag", "_loop", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Raise the flag and wake the waiter, if any."""
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        """Lower the flag."""
        self._flag = False

    def is_set(self) -> bool:
        """Whether the flag is up."""
        return self._flag

    async def wait(self) -> None:
        """Return once the flag is up (at once if it already is)."""
        if self._flag:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None
