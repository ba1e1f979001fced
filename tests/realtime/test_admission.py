"""Admission of realtime connections: the limit, the pace, and refusal while draining."""

from __future__ import annotations

import asyncio

import pytest

from breakwater.obs.metrics import Metrics
from breakwater.resilience import TokenBucket
from breakwater.server.realtime.admission import Admission, Refused


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admission(
    limit: int = 10, rate: float = 1000, burst: float = 10, wait: float = 1.0
) -> Admission:
    """An Admission with a fake-clock bucket and no jitter."""
    bucket = TokenBucket(rate, burst, clock=FakeClock())
    return Admission(limit, bucket, wait, Metrics(), jitter=lambda: 0.0)


async def test_connections_over_the_limit_are_refused() -> None:
    """The connection after ``limit`` is refused with reason ``limit`` until one is released."""
    gate = admission(limit=2)
    await gate.admit("websocket")
    await gate.admit("sse")
    with pytest.raises(Refused) as refused:
        await gate.admit("websocket")
    assert (refused.value.reason, refused.value.status, refused.value.retry_after) == (
        "limit",
        503,
        1,
    )
    gate.release()
    await gate.admit("websocket")
    assert gate.metrics.realtime_refused.labels("websocket", "limit")._value.get() == 1


async def test_a_storm_past_the_burst_is_paced_not_refused() -> None:
    """Past the burst, connections wait their turn (1/rate apart) within the wait bound."""
    gate = admission(rate=100, burst=2, wait=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(gate.admit("websocket") for _ in range(6)))
    # Four waited 10, 20, 30 and 40 ms (the fake clock does not move: reservations queue).
    assert 0.035 <= loop.time() - started < 1.0
    assert gate.taken == 6


async def test_a_wait_longer_than_allowed_is_refused_with_retry_after() -> None:
    """A token further away than ``realtime_admission_wait`` is refused with reason ``rate``."""
    gate = admission(rate=1, burst=1, wait=0.5)
    await gate.admit("sse")
    with pytest.raises(Refused) as refused:
        await gate.admit("sse")
    assert refused.value.reason == "rate"
    assert refused.value.retry_after == 2  # one second to the next token, plus one
    assert gate.taken == 1


async def test_a_connection_that_leaves_while_waiting_gives_back_its_slot() -> None:
    """Cancelling a waiting admission releases the slot it held."""
    gate = admission(rate=1, burst=1, wait=5.0)
    await gate.admit("websocket")
    waiting = asyncio.ensure_future(gate.admit("websocket"))
    await asyncio.sleep(0.01)
    assert gate.taken == 2
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.taken == 1


async def test_draining_refuses_new_and_waiting_connections() -> None:
    """Once draining, new connections and those still waiting are refused (``draining``)."""
    gate = admission(rate=20, burst=1, wait=1.0)
    await gate.admit("websocket")
    waiting = asyncio.ensure_future(gate.admit("websocket"))
    await asyncio.sleep(0)
    gate.draining = True
    with pytest.raises(Refused) as late:
        await waiting
    with pytest.raises(Refused) as new:
        await gate.admit("sse")
    assert late.value.reason == new.value.reason == "draining"
    assert gate.taken == 1
