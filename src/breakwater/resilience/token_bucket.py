"""A token bucket: admit work at a steady ``rate`` with bursts of up to ``burst``.

Tokens accrue at ``rate`` per second up to ``burst``. :meth:`TokenBucket.try_acquire` takes a
token now or refuses; :meth:`TokenBucket.reserve` takes one that may only become available later
and says how long to wait for it, so that callers queue in arrival order instead of retrying in
a storm. A reservation that would wait longer than the caller accepts takes nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """Rate limiting with an injected monotonic ``clock`` (seconds)."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number, not {rate!r}")
        if not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock()

    def _refill(self) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        return self._tokens

    @property
    def tokens(self) -> float:
        """Tokens available now (negative while reservations are outstanding)."""
        return self._refill()

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if they are available now; never waits."""
        if self._refill() >= tokens:
            self._tokens -= tokens
            return True
        return False

    def reserve(self, tokens: float = 1.0, max_wait: float = math.inf) -> float | None:
        """Take ``tokens`` and return the seconds to wait before using them (0: at once).

        ``None`` when the wait would exceed ``max_wait``; nothing is taken then.
        """
        if tokens > self.burst:
            raise ValueError(f"cannot reserve {tokens} tokens from a bucket of {self.burst}")
        available = self._refill()
        wait = max(0.0, (tokens - available) / self.rate)
        if wait > max_wait:
            return None
        self._tokens -= tokens
        return wait

    def retry_after(self, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` would be available without waiting (0 if they are now)."""
        return max(0.0, (tokens - self._refill()) / self.rate)
