"""Token-bucket rate limits per client IP, per user and for the whole node (429 + Retry-After).

Buckets are kept per key in a bounded LRU, so a flood of distinct addresses costs bounded
memory: a forgotten key starts again with a full bucket, which errs on the side of serving.
The auth endpoints (sign-in, sign-up, refresh) have a stricter per-IP bucket of their own:
each costs an argon2id hash, and they are what a password-guessing attack hits.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from breakwater.auth.settings import AuthSettings, proxy_networks
from breakwater.core.errors import RateLimited
from breakwater.obs.metrics import Metrics
from breakwater.resilience import TokenBucket

MAX_KEYS = 100_000


class Buckets:
    """One token bucket per key, at most ``max_keys`` of them (least recently used go)."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float], max_keys: int = MAX_KEYS
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def retry_after(self, key: str) -> float:
        """0 when ``key`` may go now (a token is taken), else the seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.clock)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        if bucket.try_acquire():
            return 0.0
        return bucket.retry_after()


class RateLimiter:
    """The node's limits; :meth:`check` raises ``RateLimited`` and counts the refusal."""

    def __init__(
        self, settings: AuthSettings, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics = metrics
        self.trusted = proxy_networks(settings.trusted_proxies)
        """Proxies whose ``X-Forwarded-For`` names the client (see ``access.client_ip``)."""

        def buckets(rate: float, burst: int) -> Buckets | None:
            return Buckets(rate, burst, clock) if rate > 0 else None

        self.per_ip = buckets(settings.rate_per_ip, settings.burst_per_ip)
        self.per_user = buckets(settings.rate_per_user, settings.burst_per_user)
        self.auth_per_ip = buckets(settings.rate_auth_per_ip, settings.burst_auth_per_ip)
        self.global_ = buckets(settings.rate_global, settings.burst_global)

    def check(self, ip: str, uid: str | None, auth_endpoint: bool = False) -> None:
        """Take one token from every bucket that applies, or refuse with the longest wait."""
        checks: list[tuple[str, Buckets | None, str]] = [
            ("global", self.global_, ""),
            ("ip", self.per_ip, ip),
        ]
        if auth_endpoint:
            checks.append(("auth", self.auth_per_ip, ip))
        if uid is not None:
            checks.append(("user", self.per_user, uid))
        for scope, buckets, key in checks:
            if buckets is None:
                continue
            wait = buckets.retry_after(key)
            if wait > 0:
                self.metrics.rate_limited.labels(scope).inc()
                seconds = max(1, math.ceil(wait))
                raise RateLimited(
                    f"too many requests ({scope} limit); retry in {seconds} s",
                    retry_after=seconds,
                    limit=scope,
                )
