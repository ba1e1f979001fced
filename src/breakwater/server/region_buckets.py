"""The region's shared rate-limit buckets, with this node's own standing in while they fail.

With a ``redis://`` cache the nodes of a region take from one set of buckets, so a limit holds
once for the region instead of once per node. A node must keep serving when Redis does not
answer (I8): the first failure opens a circuit breaker, the node limits with its own buckets
(per node, as without Redis) and logs once; every ``probe_interval`` one call tries Redis again,
and the first success closes the breaker and logs the recovery. Calls answered locally are
counted in ``breakwater_rate_limit_fallbacks_total``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from breakwater.cache.buckets import Buckets, BucketsUnavailable, Limit, MemoryBuckets, Wait
from breakwater.obs.logging import get_logger
from breakwater.obs.metrics import Metrics
from breakwater.resilience import CircuitBreaker

_log = get_logger("breakwater.server.rate_limit")
T = TypeVar("T")
PROBE_INTERVAL = 2.0
"""Seconds between attempts to reach the shared buckets while they are down."""
PROBE_KEY = "probe"
"""The mark a health check reads to see whether the shared buckets answer again."""


class RegionBuckets:
    """:class:`~breakwater.cache.buckets.Buckets` that are shared when they can be."""

    def __init__(
        self,
        shared: Buckets | None,
        local: MemoryBuckets,
        metrics: Metrics,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.shared = shared
        self.local = local
        self.metrics = metrics
        self.breaker = breaker or CircuitBreaker(failure_threshold=1, reset_timeout=PROBE_INTERVAL)
        self._shared_up = True

    @property
    def healthy(self) -> bool:
        """False while the shared buckets fail (and limits are per node)."""
        return self.shared is None or self._shared_up

    async def open(self) -> None:
        """Open the shared buckets (an absent server only shows on the first call)."""
        if self.shared is not None:
            await self.shared.open()

    async def aclose(self) -> None:
        """Close the shared buckets."""
        if self.shared is not None:
            await self.shared.aclose()

    async def check(self) -> bool:
        """:attr:`healthy`, after a probe of the shared buckets when they are down and a probe
        is due: a health check brings the limits back to Redis on an idle node too."""
        if self.shared is not None and not self._shared_up and self.breaker.allow():
            await self._shared(self.shared, lambda buckets: buckets.marked(PROBE_KEY))
        return self.healthy

    async def _call(self, operation: Callable[[Buckets], Awaitable[T]]) -> T:
        shared = self.shared
        if shared is None:  # every call without Redis: the node's own buckets, no breaker
            return await operation(self.local)
        if self.breaker.allow():
            answered, result = await self._shared(shared, operation)
            if answered:
                return result  # type: ignore[return-value]
        self.metrics.rate_limit_fallbacks.inc()
        return await operation(self.local)

    async def _shared(
        self, shared: Buckets, operation: Callable[[Buckets], Awaitable[T]]
    ) -> tuple[bool, T | None]:
        """``operation`` on the shared buckets, kept in the breaker's books: (answered, result)."""
        try:
            result = await operation(shared)
        except BucketsUnavailable as error:
            self.breaker.record_failure()
            if self._shared_up:
                self._shared_up = False
                _log.warning("rate_limits_local", error=error.type, detail=error.detail)
            return False, None
        self.breaker.record_success()
        if not self._shared_up:
            self._shared_up = True
            _log.info("rate_limits_shared")
        return True, result

    async def take(self, limits: Sequence[Limit]) -> Wait | None:
        """See :meth:`Buckets.take`."""
        return await self._call(lambda buckets: buckets.take(limits))

    async def refund(self, limits: Sequence[Limit]) -> None:
        """See :meth:`Buckets.refund`."""
        await self._call(lambda buckets: buckets.refund(limits))

    async def mark(self, key: str, ttl: float) -> None:
        """See :meth:`Buckets.mark`."""
        await self._call(lambda buckets: buckets.mark(key, ttl))

    async def marked(self, key: str) -> bool:
        """See :meth:`Buckets.marked`."""
        return await self._call(lambda buckets: buckets.marked(key))
