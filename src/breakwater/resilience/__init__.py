"""Bounded waiting and pacing: token buckets (and, later, backoff, retry budgets, breakers).

Standard library only; every time-based piece takes an injected clock so tests never sleep.
"""

from breakwater.resilience.token_bucket import TokenBucket

__all__ = ["TokenBucket"]
