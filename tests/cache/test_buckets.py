"""The rate-limit buckets contract (breakwater/cache/buckets.py), for every backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from breakwater.cache.buckets import Buckets, Limit, MemoryBuckets, open_buckets
from tests.services import REDIS_URL, require_service


@pytest.fixture(params=["memory", "redis"])
async def buckets(request: pytest.FixtureRequest) -> AsyncIterator[Buckets]:
    """Open buckets of each backend, the Redis ones under a prefix of their own."""
    if request.param == "memory":
        opened: Buckets = MemoryBuckets()
    else:
        url = f"{require_service(REDIS_URL)}?prefix=test-{uuid.uuid4().hex[:12]}"
        shared = open_buckets(url)
        assert shared is not None
        opened = shared
    await opened.open()
    yield opened
    await opened.aclose()


SLOW = 0.001
"""A rate so low that no token comes back during a test."""


async def test_a_bucket_lets_its_burst_through_then_refuses(buckets: Buckets) -> None:
    """``burst`` takes succeed, the next one is a wait of about one interval."""
    limit = Limit("a", SLOW, 3)
    assert [await buckets.take([limit]) for _ in range(3)] == [None, None, None]
    wait = await buckets.take([limit])
    assert wait is not None and wait.limit == limit
    assert 0 < wait.seconds <= limit.interval


async def test_take_is_all_or_none(buckets: Buckets) -> None:
    """A refusal by one bucket takes nothing from the others, and names the empty one."""
    full, empty = Limit("full", SLOW, 1), Limit("empty", SLOW, 1)
    assert await buckets.take([empty]) is None
    wait = await buckets.take([full, empty])
    assert wait is not None and wait.limit == empty
    assert await buckets.take([full]) is None


async def test_buckets_are_independent(buckets: Buckets) -> None:
    """Emptying one key leaves every other key full."""
    assert await buckets.take([Limit("x", SLOW, 1)]) is None
    assert await buckets.take([Limit("x", SLOW, 1)]) is not None
    assert await buckets.take([Limit("y", SLOW, 1)]) is None


async def test_a_refund_gives_one_token_back(buckets: Buckets) -> None:
    """After a refund exactly one more take succeeds."""
    limit = Limit("r", SLOW, 2)
    await buckets.take([limit])
    await buckets.take([limit])
    await buckets.refund([limit])
    assert await buckets.take([limit]) is None
    assert await buckets.take([limit]) is not None


async def test_a_refund_never_fills_a_bucket_above_its_burst(buckets: Buckets) -> None:
    """Refunds to a full bucket are lost, not banked."""
    limit = Limit("f", SLOW, 1)
    await buckets.refund([limit, limit])
    assert await buckets.take([limit]) is None
    assert await buckets.take([limit]) is not None


async def test_marks_are_remembered(buckets: Buckets) -> None:
    """A marked key is marked; another is not."""
    await buckets.mark("m", ttl=60)
    assert await buckets.marked("m")
    assert not await buckets.marked("n")


@settings(max_examples=50, deadline=None)
@example(rate=0.75, burst=2, steps=[(0.6358896531535986, False), (0.0, False)])  # float ulps
@given(
    rate=st.floats(0.5, 100),
    burst=st.integers(1, 20),
    steps=st.lists(st.tuples(st.floats(0, 2), st.booleans()), max_size=40),
)
async def test_memory_buckets_admit_what_a_token_bucket_admits(
    rate: float, burst: int, steps: list[tuple[float, bool]]
) -> None:
    """Over time, a bucket admits no more than ``burst + rate * elapsed`` and refuses only
    when that many were admitted."""
    now = [0.0]
    buckets = MemoryBuckets(clock=lambda: now[0])
    limit = Limit("k", rate, burst)
    taken = 0.0  # tokens used, minus the ones refill has given back
    for delay, refund in steps:
        now[0] += delay
        taken = max(0.0, taken - delay * rate)
        if refund:
            await buckets.refund([limit])
            taken = max(0.0, taken - 1)
            continue
        wait = await buckets.take([limit])
        if taken + 1 <= burst + 1e-9:
            assert wait is None
            taken += 1
        else:
            assert wait is not None
            assert wait.seconds == pytest.approx((taken + 1 - burst) / rate, abs=1e-6)
