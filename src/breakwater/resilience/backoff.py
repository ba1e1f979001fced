"""Exponential backoff with full jitter (the AWS architecture blog's "full jitter").

The n-th wait is uniform in ``[0, min(cap, base * 2**n)]``: clients that failed together spread
out instead of retrying in lock-step, and the cap bounds the worst wait. ``random`` is injected so
tests are deterministic.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable


class Backoff:
    """Successive waits for one retrying caller; :meth:`reset` after a success."""

    def __init__(
        self,
        base: float = 0.1,
        cap: float = 30.0,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not (base > 0 and cap >= base):
            raise ValueError(f"need 0 < base <= cap, got base={base!r} cap={cap!r}")
        self.base = base
        self.cap = cap
        self._random = random
        self.attempts = 0

    def ceiling(self) -> float:
        """The upper bound of the next wait."""
        return min(self.cap, self.base * float(2 ** min(self.attempts, 62)))

    def next_delay(self) -> float:
        """The next wait in seconds (uniform below :meth:`ceiling`); counts one attempt."""
        delay = self._random() * self.ceiling()
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Start again from ``base`` (after a success)."""
        self.attempts = 0
