"""The in-process cache (``memory://``): a least-recently-used map bounded by entries and bytes.

It is the default: one node's hot documents and query pages stay in its own memory, and the
node's feed follower invalidates them when any node of the region commits. Every call runs on
the event loop without awaiting anything, so it never fails and never waits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

MAX_ENTRIES = 10_000
MAX_BYTES = 64 * 1024 * 1024


class MemoryCache:
    """A :class:`~breakwater.cache.Cache` in this process's memory."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a memory cache needs room for at least one entry and one byte")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    async def open(self) -> None:
        """Nothing to connect to."""

    async def aclose(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: str, now: float) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        value, expires = found
        if expires <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.bytes -= len(key) + len(value)

    def _set(self, key: str, value: bytes, expires: float) -> None:
        if key in self._entries:
            self._drop(key)
        size = len(key) + len(value)
        if size > self.max_bytes:
            return  # larger than the whole cache: not kept
        self._entries[key] = (value, expires)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The live value of every key, each marked as recently used."""
        now = self._clock()
        return [self._get(key, now) for key in keys]

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store every item; the least recently used entries make room."""
        expires = self._clock() + ttl
        for key, value in items.items():
            self._set(key, value, expires)

    async def replace_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store each item whose key holds a live value (each one then recently used)."""
        now = self._clock()
        for key, value in items.items():
            if self._get(key, now) is not None:
                self._set(key, value, now + ttl)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` unless ``key`` holds a live one."""
        now = self._clock()
        if self._get(key, now) is not None:
            return False
        self._set(key, value, now + ttl)
        return True
