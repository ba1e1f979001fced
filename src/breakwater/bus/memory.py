"""The in-process bus (``memory://``): notices reach the subscribers of this process only.

It is the default for a single node, where the store and every reader share one process, and it
doubles as the fake bus of tests. Everything runs on the event loop that calls it: ``publish``
appends to each subscriber's bounded deque and wakes it, in O(subscribers), without awaiting.
"""

from __future__ import annotations

import asyncio
from collections import deque

from breakwater.bus import BusStats, CommitNotice


class MemorySubscription:
    """One subscriber's bounded buffer of notices (the oldest is dropped when full)."""

    def __init__(self, bus: MemoryBus, buffer: int) -> None:
        if buffer < 1:
            raise ValueError("a subscription needs a buffer of at least one notice")
        self._bus = bus
        self._pending: deque[CommitNotice] = deque(maxlen=buffer)
        self._wakeup = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def _deliver(self, notice: CommitNotice) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(notice)
        self._wakeup.set()

    def __aiter__(self) -> MemorySubscription:
        return self

    async def __anext__(self) -> CommitNotice:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._pending.popleft()

    def close(self) -> None:
        """Stop receiving and end a pending iteration."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._bus._subscribers.discard(self)
        self._wakeup.set()


class MemoryBus:
    """A :class:`~breakwater.bus.Bus` inside one process."""

    def __init__(self) -> None:
        self._subscribers: set[MemorySubscription] = set()
        self._closed = False

    async def open(self) -> None:
        """Nothing to connect to."""

    async def aclose(self) -> None:
        """End every subscription."""
        self._closed = True
        for subscription in list(self._subscribers):
            subscription.close()

    def publish(self, notice: CommitNotice) -> None:
        """Hand ``notice`` to every current subscriber."""
        for subscription in self._subscribers:
            subscription._deliver(notice)

    def subscribe(self, buffer: int = 64) -> MemorySubscription:
        """A new subscription; after ``aclose`` it is already closed."""
        subscription = MemorySubscription(self, buffer)
        if self._closed:
            subscription.close()
        else:
            self._subscribers.add(subscription)
        return subscription

    @property
    def healthy(self) -> bool:
        """Always true: there is no broker to lose."""
        return True

    @property
    def stats(self) -> BusStats:
        """Nothing crosses a process boundary: all zero."""
        return BusStats()
