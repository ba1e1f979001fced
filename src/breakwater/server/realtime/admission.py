"""Who may open a realtime connection, and when: a connection limit and a paced admission.

Every new WebSocket or SSE connection takes a slot (at most ``max_realtime_connections``,
counting those still waiting to be admitted) and then a token from a token bucket. When a storm
of reconnects arrives, connections queue for their token in arrival order (each waits at most
``realtime_admission_wait``) instead of all replaying from the store at once, which keeps the
node responsive. A connection that cannot get a slot, or whose token is too far away, or that
arrives while the node drains, is refused with ``503`` and a ``Retry-After`` with jitter, so
refused clients do not come back in lockstep.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

from breakwater.core.errors import Unavailable
from breakwater.obs.metrics import Metrics
from breakwater.resilience import TokenBucket


class Refused(Unavailable):
    """A realtime connection was not admitted; ``reason`` is limit, rate or draining."""

    def __init__(self, detail: str, reason: str, retry_after: int) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason
        self.retry_after = retry_after


class Admission:
    """The connection limit and the admission pace of one node."""

    def __init__(
        self,
        limit: int,
        bucket: TokenBucket,
        max_wait: float,
        metrics: Metrics,
        jitter: Callable[[], float] = random.random,
        on_wait: Callable[[], None] = lambda: None,
    ) -> None:
        self.limit = limit
        self.bucket = bucket
        self.max_wait = max_wait
        self.metrics = metrics
        self.draining = False
        self.taken = 0
        self._jitter = jitter
        self._on_wait = on_wait

    def _refuse(self, transport: str, reason: str, detail: str, after: float) -> Refused:
        self.metrics.realtime_refused.labels(transport, reason).inc()
        # Spread the retries of refused clients over a few seconds.
        retry_after = max(1, math.ceil(after + 1 + 4 * self._jitter()))
        return Refused(detail, reason, retry_after)

    async def admit(self, transport: str) -> None:
        """Take a slot and wait for this connection's turn; raise :class:`Refused` instead.

        The caller must call :meth:`release` once the connection ends (only if admitted).
        """
        if self.draining:
            raise self._refuse(
                transport, "draining", "the node is draining; connect to another node", 0
            )
        if self.taken >= self.limit:
            raise self._refuse(
                transport,
                "limit",
                f"the node has {self.limit} realtime connections, its limit; retry later",
                0,
            )
        wait = self.bucket.reserve(max_wait=self.max_wait)
        if wait is None:
            raise self._refuse(
                transport,
                "rate",
                "too many realtime connections are being opened right now; retry later",
                self.bucket.retry_after(),
            )
        self.taken += 1
        try:
            if wait > 0:
                self._on_wait()  # a storm: connections queue for their turn
                await asyncio.sleep(wait)
            if self.draining:
                raise self._refuse(
                    transport, "draining", "the node is draining; connect to another node", 0
                )
        except BaseException:
            self.taken -= 1
            raise

    def release(self) -> None:
        """Give back the slot of a connection that was admitted."""
        self.taken -= 1
