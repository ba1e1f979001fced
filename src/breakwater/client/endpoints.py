"""Client-side failover across endpoints (regions, gateways): health, latency, breakers.

Each endpoint has a circuit breaker and a latency estimate (an EWMA of measured round trips).
:meth:`EndpointPool.choose` prefers the endpoint the client is on while it works, else the
fastest one whose breaker lets a call through, so a dead region is skipped quickly and probed
again later, and a slow one is left for a faster one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from breakwater.resilience import CircuitBreaker

EWMA_WEIGHT = 0.3


@dataclass
class Endpoint:
    """One base URL with its breaker and latency estimate (seconds; ``None``: not measured)."""

    url: str
    breaker: CircuitBreaker
    latency: float | None = None

    def observe_latency(self, seconds: float) -> None:
        """Fold one measured round trip into the estimate."""
        if self.latency is None:
            self.latency = seconds
        else:
            self.latency = (1 - EWMA_WEIGHT) * self.latency + EWMA_WEIGHT * seconds


class EndpointPool:
    """The endpoints of one deployment, in the app's order of preference."""

    def __init__(
        self,
        urls: Sequence[str],
        failure_threshold: int = 3,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = [
            Endpoint(url.rstrip("/"), CircuitBreaker(failure_threshold, reset_timeout, clock))
            for url in urls
        ]
        self.current: Endpoint | None = None

    def choose(self) -> Endpoint | None:
        """The endpoint to use now, or ``None`` when every breaker is open."""
        if self.current is not None and self.current.breaker.state == "closed":
            return self.current
        ranked = sorted(
            enumerate(self.endpoints),
            key=lambda item: (
                item[1].breaker.state != "closed",
                item[1].latency if item[1].latency is not None else 0.0,
                item[0],
            ),
        )
        for _, endpoint in ranked:
            if endpoint.breaker.allow():
                self.current = endpoint
                return endpoint
        return None

    def retry_in(self) -> float:
        """Seconds until some endpoint's breaker lets a probe through."""
        return min(e.breaker.retry_in() for e in self.endpoints)

    def probe_now(self) -> None:
        """Let every open breaker through with a probe now (the network is said to be back)."""
        for endpoint in self.endpoints:
            endpoint.breaker.probe_now()

    def succeeded(self, endpoint: Endpoint, latency: float) -> None:
        """A call to ``endpoint`` worked and took ``latency`` seconds."""
        endpoint.breaker.record_success()
        endpoint.observe_latency(latency)

    def failed(self, endpoint: Endpoint) -> None:
        """A call to ``endpoint`` failed; after enough failures its breaker opens."""
        endpoint.breaker.record_failure()
        if endpoint.breaker.state != "closed" and self.current is endpoint:
            self.current = None
