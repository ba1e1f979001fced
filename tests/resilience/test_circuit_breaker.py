"""Circuit breaker: opens after consecutive failures, probes once after the timeout."""

from __future__ import annotations

from breakwater.resilience import CircuitBreaker
from breakwater.resilience.circuit_breaker import State


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> State:
    """The breaker's state read afresh (mypy would otherwise keep ``breaker.state`` narrowed to
    the Literal of an earlier assert, across the calls that change it)."""
    return breaker.state


def test_opens_after_threshold_consecutive_failures() -> None:
    """Two failures keep it closed; the third opens it and calls are refused."""
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=5, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    assert state_of(breaker) == "closed" and breaker.allow()
    breaker.record_failure()
    assert state_of(breaker) == "open" and not breaker.allow()


def test_success_resets_the_failure_count() -> None:
    """Failures must be consecutive to open the breaker."""
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert state_of(breaker) == "closed"


def test_half_open_lets_one_probe_through() -> None:
    """After the timeout exactly one caller may probe; its success closes the breaker."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5, clock=clock)
    breaker.record_failure()
    assert breaker.retry_in() == 5
    clock.now = 5.0
    assert state_of(breaker) == "half_open"
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert state_of(breaker) == "closed" and breaker.allow()


def test_failed_probe_opens_again_for_a_full_timeout() -> None:
    """A failing probe re-opens the breaker and restarts its timeout."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=5, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now = 6.0
    assert breaker.allow()
    breaker.record_failure()
    assert state_of(breaker) == "open"
    clock.now = 10.0
    assert not breaker.allow()
    clock.now = 11.0
    assert breaker.allow()


def test_probe_now_lets_one_probe_through_before_the_timeout() -> None:
    """News that the dependency is back opens the way for one probe at once; a failure of that
    probe opens the breaker for a full timeout again, and a closed breaker stays as it is."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5, clock=clock)
    breaker.probe_now()
    assert state_of(breaker) == "closed"
    breaker.record_failure()
    clock.now = 1.0
    assert not breaker.allow()
    breaker.probe_now()
    assert state_of(breaker) == "half_open" and breaker.retry_in() == 0
    assert breaker.allow() and not breaker.allow()
    breaker.probe_now()  # a probe is already out: still only that one
    assert not breaker.allow()
    breaker.record_failure()
    assert state_of(breaker) == "open" and breaker.retry_in() == 5


def test_a_probe_never_answered_is_presumed_lost_after_a_timeout() -> None:
    """A probe whose caller never records its outcome (cancelled, or met an error it did not
    count) holds the breaker half-open for one more timeout, not for good: then the next
    caller probes (a replicator wedged this way stopped pulling from a restarted region)."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5, clock=clock)
    breaker.record_failure()
    clock.now = 5.0
    assert breaker.allow()  # the probe goes out, and its outcome is never recorded
    clock.now = 9.0
    assert not breaker.allow() and breaker.retry_in() == 1
    breaker.probe_now()  # news of the dependency does not start a second probe meanwhile
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.retry_in() == 0
    assert breaker.allow() and not breaker.allow()  # one new probe
    breaker.record_success()
    assert state_of(breaker) == "closed"
