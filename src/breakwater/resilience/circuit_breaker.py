"""A circuit breaker: stop calling a dependency that keeps failing, probe it now and then.

States: ``closed`` (calls pass; ``failure_threshold`` consecutive failures open it), ``open``
(calls are refused for ``reset_timeout`` seconds), ``half_open`` (one probe passes; its success
closes the breaker, its failure opens it again). A probe whose outcome is never recorded (its
caller was cancelled, or met an error it did not count) is presumed lost after another
``reset_timeout``, and the next call probes: a breaker is never left half-open for good with no
probe to end it. The clock is injected so tests never sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Per-dependency failure accounting with an injected monotonic ``clock`` (seconds)."""

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._probe_at = 0.0

    @property
    def state(self) -> State:
        """The state now (``open`` turns ``half_open`` once ``reset_timeout`` has passed)."""
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.reset_timeout:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go now; in ``half_open`` only the first caller gets the probe."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing_now():
            self._probing = True
            self._probe_at = self._clock()
            return True
        return False

    def _probing_now(self) -> bool:
        """A probe is out and not yet presumed lost."""
        return self._probing and self._clock() - self._probe_at < self.reset_timeout

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through, or a probe out is presumed lost
        (0 when a probe would go now)."""
        if self._opened_at is None:
            return 0.0
        if self._probing:
            return max(0.0, self.reset_timeout - (self._clock() - self._probe_at))
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def probe_now(self) -> None:
        """Let the next call through as a probe, without waiting out ``reset_timeout`` (the
        caller has news that the dependency is back, such as the OS reporting the network)."""
        if self._opened_at is not None and not self._probing_now():
            self._opened_at = self._clock() - self.reset_timeout
            self._probing = False

    def trip(self) -> None:
        """Open now, whatever the count (a health check before first use failed)."""
        self._failures = max(self._failures, self.failure_threshold)
        self._opened_at = self._clock()
        self._probing = False

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        """A call failed: count it; open (again) at the threshold or after a failed probe."""
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._probing = False
