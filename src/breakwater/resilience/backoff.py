"""Exponential backoff with full jitter: how long to wait before the next reconnect attempt.

Attempt ``n`` (from 0) waits a uniformly random time in ``[0, min(cap, base * 2**n)]`` ("full
jitter", as in the AWS architecture note): many clients that lost the same broker at the same
moment spread their retries instead of reconnecting in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for successive attempts; :meth:`reset` after a success."""

    base: float = 0.1
    cap: float = 10.0
    rand: Callable[[], float] = field(default=random.random, repr=False)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"base must be positive, not {self.base!r}")
        if self.cap < self.base:
            raise ValueError(f"cap must be at least base, not {self.cap!r}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait of ``attempt``: ``min(cap, base * 2**attempt)``."""
        # Past 2**64 the product only overflows the cap: stop doubling there.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def next_delay(self) -> float:
        """The wait before the next attempt (and count that attempt)."""
        delay = self.rand() * self.ceiling(self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """The last attempt succeeded: the next failure waits briefly again."""
        self.attempt = 0
