"""Client-side routing across regions and their endpoints: health, latency, breakers, hysteresis.

Endpoints are grouped by region (the app's ``regions``, else one region per URL, refined by the
deployment's directory, ``GET /v1/regions``). Each endpoint has a circuit breaker and a latency
estimate (an EWMA of health probes and real round trips); a region's latency is its best
endpoint's. :meth:`EndpointPool.choose` keeps the endpoint the client is on while it works (no
flapping), else picks the best region (writable first, then fastest) whose breaker lets a call
through. Moving while the current one works (back home after a failover, or to a region that
became nearer) needs hysteresis: the other region answered ``settle_probes`` probes in a row
and is faster by ``move_margin``, so two regions of similar latency never trade places.
A request waits at most :meth:`EndpointPool.patience` when there is another region, so a silent
region (black-holed, not refusing) costs about a second, not the request timeout (ADR 0038).
See docs/protocol.md#region-routing for the rules every SDK follows.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from breakwater.resilience import CircuitBreaker

EWMA_WEIGHT = 0.3
SETTLE_PROBES = 3
MOVE_MARGIN = 0.3
UNAVAILABLE_STATES = frozenset({"standby", "draining"})
"""Directory states in which a region takes no writes: left while any other region works."""
FAILOVER_TIMEOUT = 1.0
"""Seconds a request may go unanswered (its node silent too) before the device fails over to
another region (the floor of :meth:`EndpointPool.patience`)."""
PATIENCE_FACTOR = 4.0
"""A region this many times slower than usual counts as silent (for regions far enough that
``FAILOVER_TIMEOUT`` is not a generous bound)."""
_STATE_RANK = {"active": 0, "unknown": 1, "unreachable": 2, "draining": 3, "standby": 3}


@dataclass
class Endpoint:
    """One base URL with its region, breaker and latency estimate (seconds; ``None``: not
    measured); ``streak`` counts its successes in a row (reset by a failure)."""

    url: str
    breaker: CircuitBreaker
    region: str
    latency: float | None = None
    streak: int = 0
    failing: bool = False
    """Its last call failed (ranked after the others while its breaker is still closed)."""
    answered_at: float | None = None
    """The pool's clock when a probe or call of it last succeeded (``None``: never)."""

    def observe_latency(self, seconds: float) -> None:
        """Fold one measured round trip into the estimate."""
        if self.latency is None:
            self.latency = seconds
        else:
            self.latency = (1 - EWMA_WEIGHT) * self.latency + EWMA_WEIGHT * seconds


class EndpointPool:
    """The endpoints of one deployment, grouped by region, in the app's order of preference."""

    def __init__(
        self,
        urls: Sequence[str],
        failure_threshold: int = 3,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        regions: Mapping[str, Sequence[str]] | None = None,
        settle_probes: int = SETTLE_PROBES,
        move_margin: float = MOVE_MARGIN,
        failover_timeout: float = FAILOVER_TIMEOUT,
        spread_seed: int | None = None,
    ) -> None:
        grouped = [(url, url) for url in urls]
        grouped += [(url, name) for name, members in (regions or {}).items() for url in members]
        if not grouped:
            raise ValueError("at least one endpoint is needed")
        self._failure_threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._clock = clock
        self.settle_probes = settle_probes
        self.move_margin = move_margin
        self.failover_timeout = failover_timeout
        self._seed = random.getrandbits(32) if spread_seed is None else spread_seed
        self.endpoints: list[Endpoint] = []
        self.region_states: dict[str, str] = {}
        """Each region's state from the last directory read (``active``, ``standby``, ...)."""
        for url, region in grouped:
            self._add(url, region)
        self.current: Endpoint | None = None

    def _add(self, url: str, region: str) -> Endpoint:
        url = url.rstrip("/")
        for endpoint in self.endpoints:
            if endpoint.url == url:
                if endpoint.region == url:  # grouped by URL only: the name is news
                    endpoint.region = region
                return endpoint
        breaker = CircuitBreaker(self._failure_threshold, self._reset_timeout, self._clock)
        endpoint = Endpoint(url, breaker, region)
        self.endpoints.append(endpoint)
        return endpoint

    # -- what the deployment says --------------------------------------------------------

    def learn(self, directory: Mapping[str, Any]) -> list[Endpoint]:
        """Take in a ``GET /v1/regions`` answer: name the regions of known URLs, add the
        endpoints not known yet, note each region's state; the endpoints added."""
        before = len(self.endpoints)
        for region in directory.get("regions", []):
            if not isinstance(region, dict) or not isinstance(region.get("name"), str):
                continue
            name = region["name"]
            state = region.get("state")
            self.region_states[name] = state if state in _STATE_RANK else "unknown"
            for url in region.get("endpoints", []):
                if isinstance(url, str) and url.startswith(("http://", "https://")):
                    self._add(url, name)
        return self.endpoints[before:]

    def region_of(self, url: str) -> str | None:
        """The region of the endpoint at ``url`` (``None``: not in the pool)."""
        url = url.rstrip("/")
        return next((e.region for e in self.endpoints if e.url == url), None)

    def region_latency(self, region: str) -> float | None:
        """The best measured latency of ``region``'s endpoints (``None``: none measured)."""
        measured = [
            e.latency for e in self.endpoints if e.region == region and e.latency is not None
        ]
        return min(measured) if measured else None

    def unmeasured(self) -> list[Endpoint]:
        """Endpoints never measured (probe them before the first choice: pick the nearest)."""
        return [e for e in self.endpoints if e.latency is None and e.breaker.state == "closed"]

    # -- choosing --------------------------------------------------------------------------

    def _writable(self, endpoint: Endpoint) -> bool:
        return self.region_states.get(endpoint.region, "unknown") not in UNAVAILABLE_STATES

    def _turn(self, endpoint: Endpoint) -> tuple[int, int]:
        """``endpoint``'s place in this device's order: its region's place in the app's
        order, then a place among the region's endpoints drawn from the pool's seed. The
        endpoints of a region are its nodes, equally good: each device takes them in its own
        order, so a region's devices (and those failing over to it) spread over its nodes
        instead of all landing on the first one listed."""
        first = next(i for i, e in enumerate(self.endpoints) if e.region == endpoint.region)
        return first, zlib.crc32(f"{self._seed}:{endpoint.url}".encode())

    def _rank(self, endpoint: Endpoint) -> tuple[bool, bool, int, float, tuple[int, int]]:
        latency = self.region_latency(endpoint.region)
        return (
            endpoint.breaker.state != "closed",
            endpoint.failing,
            _STATE_RANK.get(self.region_states.get(endpoint.region, "unknown"), 1),
            latency if latency is not None else 0.0,
            self._turn(endpoint),
        )

    def choose(self) -> Endpoint | None:
        """The endpoint to use now, or ``None`` when every breaker is open."""
        current = self.current
        if current is not None and current.breaker.state == "closed":
            better = self.better_region()
            if better is not None:
                self.current = better
                return better
            if self._writable(current) or not self._others_writable(current):
                return current
        for endpoint in sorted(self.endpoints, key=self._rank):
            if endpoint.breaker.allow():
                self.current = endpoint
                return endpoint
        return None

    def _others_writable(self, current: Endpoint) -> bool:
        return any(
            e.region != current.region and e.breaker.state == "closed" and self._writable(e)
            for e in self.endpoints
        )

    def better_region(self) -> Endpoint | None:
        """An endpoint of another region worth moving to while the current one works: settled
        (``settle_probes`` successes in a row), writable, and faster by ``move_margin``."""
        current = self.current
        if current is None:
            return None
        here = self.region_latency(current.region)
        if here is None:
            return None
        best: Endpoint | None = None
        for endpoint in self.endpoints:
            if (
                endpoint.region == current.region
                or endpoint.breaker.state != "closed"
                or endpoint.streak < self.settle_probes
                or endpoint.latency is None
                or not self._writable(endpoint)
            ):
                continue
            if endpoint.latency < here * (1 - self.move_margin) and (
                best is None or endpoint.latency < (best.latency or 0.0)
            ):
                best = endpoint
        return best

    def to_probe(self) -> list[Endpoint]:
        """Endpoints of other regions to health-probe now: one per region, whose breaker lets
        a call through, the one this device would choose (the current endpoint is measured
        by its real requests)."""
        chosen: dict[str, Endpoint] = {}
        ordered = sorted(self.endpoints, key=lambda e: (e.breaker.state != "closed", self._turn(e)))
        for endpoint in ordered:
            here = self.current is not None and endpoint.region == self.current.region
            if not here and endpoint.breaker.retry_in() == 0:
                chosen.setdefault(endpoint.region, endpoint)
        return list(chosen.values())

    def healthy_elsewhere(self, failed: Endpoint) -> bool:
        """Another region answered its last probe or call (breaker closed, not failing): a
        failure of ``failed`` is then reason enough to move there, without waiting for the
        breaker's threshold; the failed endpoint comes back by the hysteresis rule."""
        return any(
            e.region != failed.region
            and e.breaker.state == "closed"
            and e.streak > 0
            and self._writable(e)
            for e in self.endpoints
        )

    def patience(self, endpoint: Endpoint) -> float | None:
        """Seconds a request to ``endpoint`` may wait for an answer before it counts as failed:
        ``failover_timeout`` (or ``PATIENCE_FACTOR`` times the region's latency, if longer)
        when the pool has another region; ``None`` (the request timeout) when it has none.
        Not only while another region is known healthy: under load a probe of the others can
        fail too, and a request then stuck on a silent node would wait out the whole request
        timeout (a live node is kept anyway: :class:`~.node_api.NodeApi` probes it first)."""
        if all(e.region == endpoint.region for e in self.endpoints):
            return None
        latency = self.region_latency(endpoint.region) or 0.0
        return max(self.failover_timeout, PATIENCE_FACTOR * latency)

    def vouched_for(self, endpoint: Endpoint, within: float) -> bool:
        """``endpoint`` answered a health probe or a call in the last ``within`` seconds and
        has not failed since: that answer stands for the health check before switching to it,
        so a failover does not spend a round trip (on a region that every failing-over device
        now hits at once) asking again what the prober has just been told."""
        answered = endpoint.answered_at
        return (
            endpoint.streak > 0
            and endpoint.breaker.state == "closed"
            and answered is not None
            and self._clock() - answered <= within
        )

    def has_alternative(self) -> bool:
        """Some endpoint other than the current one has a closed breaker (no backoff needed
        before trying it: backoff spares a failing server, and that one has not failed)."""
        return any(e is not self.current and e.breaker.state == "closed" for e in self.endpoints)

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
        endpoint.streak += 1
        endpoint.failing = False
        endpoint.answered_at = self._clock()

    def failed(
        self, endpoint: Endpoint, health_check: bool = False, waited: float | None = None
    ) -> None:
        """A call to ``endpoint`` failed; after enough failures its breaker opens. With
        ``health_check`` (a check before switching to it failed, or another region is known
        healthy) it opens at once: a failover then costs one try, not a threshold of them.
        A call left unanswered for ``waited`` seconds counts that long in the latency
        estimate: a region that went silent does not look near enough to move back to until
        its probes say so again (no flapping on a slow region)."""
        if waited is not None:
            endpoint.observe_latency(waited)
        if health_check:
            endpoint.breaker.trip()
        else:
            endpoint.breaker.record_failure()
        endpoint.streak = 0
        endpoint.failing = True
        if endpoint.breaker.state != "closed" and self.current is endpoint:
            self.current = None

    def regions(self) -> Iterable[str]:
        """The regions in the pool, in order of first appearance."""
        return dict.fromkeys(e.region for e in self.endpoints)
