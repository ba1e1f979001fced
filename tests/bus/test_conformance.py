"""The Bus contract, run against every backend (memory, ipc, redis, nats, nats+jetstream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from breakwater.bus import Bus, CommitNotice, open_bus
from breakwater.core.errors import ConfigError


@pytest.fixture
async def bus(bus_url: str) -> AsyncIterator[Bus]:
    """An open bus of each backend (``bus_url`` is parametrized over them in conftest.py)."""
    opened = open_bus(bus_url)
    await opened.open()
    yield opened
    await opened.aclose()


def notice(seq: int) -> CommitNotice:
    """A notice of head ``{r1: seq}``."""
    return CommitNotice({"r1": seq}, float(seq))


async def next_notice(subscription: AsyncIterator[CommitNotice]) -> CommitNotice:
    """The next notice, or a test failure after two seconds."""
    return await asyncio.wait_for(anext(subscription), 2)


async def test_every_subscriber_gets_every_notice_in_order(bus: Bus) -> None:
    """Two subscribers each receive all published notices in publish order."""
    first, second = bus.subscribe(), bus.subscribe()
    for seq in (1, 2, 3):
        bus.publish(notice(seq))
    for subscription in (first, second):
        assert [(await next_notice(subscription)).head["r1"] for _ in range(3)] == [1, 2, 3]


async def test_a_subscriber_sees_only_later_notices(bus: Bus) -> None:
    """Notices published before ``subscribe`` are not replayed."""
    bus.publish(notice(1))
    subscription = bus.subscribe()
    bus.publish(notice(2))
    assert (await next_notice(subscription)).head == {"r1": 2}


async def test_a_slow_subscriber_loses_the_oldest_notices_only(bus: Bus) -> None:
    """Past its buffer a subscriber keeps the newest notices and counts the dropped ones."""
    subscription = bus.subscribe(buffer=4)
    for seq in range(1, 11):
        bus.publish(notice(seq))
    received = [(await next_notice(subscription)).head["r1"] for _ in range(4)]
    assert received == [7, 8, 9, 10]
    assert subscription.dropped == 6


async def test_publish_does_not_wait_for_subscribers(bus: Bus) -> None:
    """Publishing to a subscriber that never reads returns at once, however many notices."""
    bus.subscribe(buffer=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for seq in range(10_000):
        bus.publish(notice(seq))
    assert loop.time() - started < 1.0


async def test_closing_a_subscription_ends_its_iteration(bus: Bus) -> None:
    """A reader waiting on a closed subscription stops instead of hanging."""
    subscription = bus.subscribe()
    reader = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0)
    subscription.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, 2)
    bus.publish(notice(1))  # no longer delivered, and no error


async def test_closing_the_bus_ends_every_subscription(bus: Bus) -> None:
    """``aclose`` ends iteration for current subscribers and later ones."""
    subscription = bus.subscribe()
    await bus.aclose()
    with pytest.raises(StopAsyncIteration):
        await next_notice(subscription)
    with pytest.raises(StopAsyncIteration):
        await next_notice(bus.subscribe())


async def test_a_new_bus_is_healthy(bus: Bus) -> None:
    """An open bus with its broker reachable reports healthy."""
    assert bus.healthy


def test_an_unknown_scheme_lists_the_supported_ones() -> None:
    """``open_bus`` refuses an unknown scheme with a ConfigError naming every supported one."""
    with pytest.raises(ConfigError, match=r"unsupported scheme 'kafka'; supported: memory://"):
        open_bus("kafka://broker:9092")


def test_the_error_never_repeats_a_password() -> None:
    """A refused URL with credentials is not echoed back."""
    with pytest.raises(ConfigError) as info:
        open_bus("amqp://user:hunter2@broker/")
    assert "hunter2" not in str(info.value)
