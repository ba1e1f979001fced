"""Rate-limit buckets: this node's own (``memory://``), or the region's in Redis (``redis://``).

A bucket lets ``burst`` requests through at once and ``rate`` a second after that. Both backends
compute it the same way, with the generic cell rate algorithm (GCRA): a bucket is one number,
its theoretical arrival time (TAT); a request is let through when ``TAT + interval`` is at most
``burst`` intervals ahead of now, and then moves the TAT on by one ``interval = 1 / rate``.
A bucket nobody touched for ``burst`` intervals is full again, so it can be forgotten: buckets
may be evicted or expire at any time, which errs on the side of serving.

Contract for every backend (checked by tests/cache/test_buckets.py):

- ``take`` is all or none: it takes one token from every bucket it is given, or, when one of
  them is empty, takes nothing and returns a :class:`Wait` naming the bucket with the longest
  wait. With Redis it is one atomic script, so the nodes of a region share every bucket.
- ``refund`` gives one token back to each bucket (never above ``burst``).
- ``mark`` remembers a key for ``ttl`` seconds; ``marked`` says whether it is remembered.
- Failures are :class:`BucketsUnavailable` (transient), raised promptly. Lifecycle: ``await
  open()`` … ``await aclose()``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from breakwater.cache import _options
from breakwater.core.errors import ConfigError, Unavailable

MAX_KEYS = 100_000
"""Buckets (and marks) a node keeps in memory; the least recently used go first."""


class BucketsUnavailable(Unavailable):
    """The shared buckets cannot answer now; the node limits with its own instead."""

    type = "rate_limits_unavailable"
    title = "Rate limits unavailable"


@dataclass(frozen=True, slots=True)
class Limit:
    """One bucket: its key, its refill ``rate`` per second (> 0) and its ``burst`` (>= 1)."""

    key: str
    rate: float
    burst: int

    @property
    def interval(self) -> float:
        """Seconds one token takes to come back."""
        return 1.0 / self.rate


@dataclass(frozen=True, slots=True)
class Wait:
    """A refusal: the bucket that was empty longest and the seconds until it has a token."""

    limit: Limit
    seconds: float


class Buckets(Protocol):
    """A store of rate-limit buckets and marks."""

    async def open(self) -> None:
        """Connect if there is anything to connect to; never fails for an absent server."""

    async def aclose(self) -> None:
        """Release connections. Idempotent."""

    async def take(self, limits: Sequence[Limit]) -> Wait | None:
        """One token from every bucket (None), or none and the longest :class:`Wait`."""

    async def refund(self, limits: Sequence[Limit]) -> None:
        """One token back to every bucket."""

    async def mark(self, key: str, ttl: float) -> None:
        """Remember ``key`` for ``ttl`` seconds."""

    async def marked(self, key: str) -> bool:
        """Whether ``key`` is remembered."""


SLACK = 1e-9
"""Seconds of wait that count as none: sums of float intervals are off by ulps, and a request
due now must not be refused for 2e-16 s (Redis counts whole microseconds)."""


class MemoryBuckets:
    """:class:`Buckets` in this process, with an injected monotonic ``clock``."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._marks: OrderedDict[str, float] = OrderedDict()

    async def open(self) -> None:
        """Nothing to connect to."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def _keep(self, table: OrderedDict[str, float], key: str, value: float) -> None:
        table[key] = value
        table.move_to_end(key)
        if len(table) > self.max_keys:
            table.popitem(last=False)

    async def take(self, limits: Sequence[Limit]) -> Wait | None:
        """GCRA over every bucket; the TATs move only when all of them let the request in."""
        now = self.clock()
        known = self._tats
        longest: Wait | None = None
        tats = []
        for limit in limits:
            start = known.get(limit.key, now)
            if start < now:  # max(start, now) without the call: this runs for every request
                start = now
            interval = limit.interval
            wait = (start - now) - (limit.burst - 1) * interval
            if wait > SLACK and (longest is None or wait > longest.seconds):
                longest = Wait(limit, wait)
            tats.append(start + interval)
        if longest is not None:
            return longest
        for limit, tat in zip(limits, tats, strict=True):
            self._keep(known, limit.key, tat)
        return None

    async def refund(self, limits: Sequence[Limit]) -> None:
        """Move each TAT back by one interval, not behind now."""
        now = self.clock()
        for limit in limits:
            tat = self._tats.get(limit.key)
            if tat is not None:
                self._tats[limit.key] = max(now, tat - limit.interval)

    async def mark(self, key: str, ttl: float) -> None:
        """Remember ``key`` until ``now + ttl``."""
        self._keep(self._marks, key, self.clock() + ttl)

    async def marked(self, key: str) -> bool:
        """True while the mark has not expired."""
        until = self._marks.get(key)
        return until is not None and until > self.clock()


def open_buckets(url: str, namespace: str = "local") -> Buckets | None:
    """The region's shared buckets for a cache ``url`` (None: the cache is not shared).

    A ``redis://`` cache URL gives buckets in that Redis under ``<prefix>:limits:`` (the
    cache's ``prefix`` parameter, default ``breakwater.<namespace>``).
    """
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss"):
        return None
    from breakwater.cache.redis_buckets import RedisBuckets

    rest, options = _options(url)
    prefix = options.get("prefix", f"breakwater.{namespace}")
    if not prefix:
        raise ConfigError("the prefix of a cache URL must not be empty")
    return RedisBuckets(rest, f"{prefix}:limits")
