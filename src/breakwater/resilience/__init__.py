"""Bounded waiting and pacing: token buckets, backoff with full jitter, circuit breakers.

Standard library only; every time-based piece takes an injected clock so tests never sleep.
"""

from breakwater.resilience.backoff import Backoff
from breakwater.resilience.circuit_breaker import CircuitBreaker
from breakwater.resilience.token_bucket import TokenBucket

__all__ = ["Backoff", "CircuitBreaker", "TokenBucket"]
