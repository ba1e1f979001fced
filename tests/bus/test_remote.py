"""Broker backends (redis, nats, nats+jetstream) across processes' buses: delivery, echo,
outage, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest

from breakwater.bus import CommitNotice, open_bus
from breakwater.bus._remote import Link, RemoteBus, decode, encode, fold
from breakwater.bus.memory import MemorySubscription
from breakwater.resilience import Backoff
from tests.bus.conftest import bus_url_for
from tests.forwarder import Forwarder
from tests.services import NATS_URL, REDIS_URL, require_service

FAST = Backoff(base=0.05, cap=0.2)


@pytest.fixture(params=["redis", "nats", "nats+jetstream"])
def scheme(request: pytest.FixtureRequest) -> str:
    """Each broker backend."""
    return str(request.param)


@pytest.fixture
async def make_bus() -> AsyncIterator[Callable[[str], RemoteBus]]:
    """Open broker buses (fast reconnects); all are closed at teardown."""
    opened: list[RemoteBus] = []

    def make(url: str) -> RemoteBus:
        bus = open_bus(url)
        assert isinstance(bus, RemoteBus)
        bus.backoff = Backoff(base=FAST.base, cap=FAST.cap)
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        await bus.aclose()


def through(forwarder: Forwarder, url: str) -> str:
    """``url`` with its host and port replaced by the forwarder's."""
    return urlunsplit(urlsplit(url)._replace(netloc=f"127.0.0.1:{forwarder.port}"))


def notice(seq: int) -> CommitNotice:
    """A notice of head ``{r1: seq}``."""
    return CommitNotice({"r1": seq}, float(seq))


async def heads(subscription: MemorySubscription, count: int) -> list[int]:
    """The ``r1`` seqs of the next ``count`` notices (fails after five seconds)."""
    return [(await asyncio.wait_for(anext(subscription), 5)).head["r1"] for _ in range(count)]


async def eventually(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait until ``condition()`` holds, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_a_notice_reaches_another_bus_once(
    scheme: str, make_bus: Callable[[str], RemoteBus]
) -> None:
    """A notice published on bus A reaches subscribers of bus B, and A's own ones, once each."""
    url = bus_url_for(scheme)
    first, second = make_bus(url), make_bus(url)
    await first.open()
    await second.open()
    mine, theirs = first.subscribe(), second.subscribe()
    await asyncio.sleep(0.2)  # both subscriptions are registered at the broker
    first.publish(notice(1))
    second.publish(notice(2))
    assert sorted(await heads(mine, 2)) == [1, 2]
    assert sorted(await heads(theirs, 2)) == [1, 2]
    await asyncio.sleep(0.3)
    assert not mine._pending and not theirs._pending  # nothing twice


async def test_buses_with_other_prefixes_do_not_hear_each_other(
    scheme: str, make_bus: Callable[[str], RemoteBus]
) -> None:
    """A region's notices stay on its prefix."""
    ours, other = make_bus(bus_url_for(scheme)), make_bus(bus_url_for(scheme))
    await ours.open()
    await other.open()
    heard = other.subscribe()
    await asyncio.sleep(0.2)
    ours.publish(notice(1))
    await asyncio.sleep(0.5)
    assert other.stats.received == 0
    assert not heard._pending


async def test_a_broker_outage_is_reported_and_healed(
    scheme: str, make_bus: Callable[[str], RemoteBus]
) -> None:
    """Cut: unhealthy, publish still returns and local subscribers still hear; restored:
    healthy again and notices cross between buses again."""
    forwarder = Forwarder(require_service(REDIS_URL if scheme == "redis" else NATS_URL))
    await forwarder.start()
    direct_url = bus_url_for(scheme)
    cut_off, direct = make_bus(through(forwarder, direct_url)), make_bus(direct_url)
    try:
        await cut_off.open()
        await direct.open()
        assert cut_off.healthy
        local, remote = cut_off.subscribe(buffer=2000), direct.subscribe()
        await forwarder.cut()
        await eventually(lambda: not cut_off.healthy)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for seq in range(1, 1001):
            cut_off.publish(notice(seq))
        assert loop.time() - started < 0.5
        assert (await heads(local, 1)) == [1]
        await forwarder.restore()
        await eventually(lambda: cut_off.healthy)
        await asyncio.sleep(0.2)
        cut_off.publish(notice(2000))
        # The outage's notices were folded into one, sent on reconnect; then the new one.
        received = await heads(remote, 1)
        while received[-1] != 2000:
            received += await heads(remote, 1)
        assert received[0] in (1000, 2000)
        assert cut_off.stats.reconnects >= 1
    finally:
        await forwarder.aclose()


async def test_a_bus_opened_while_the_broker_is_down_connects_later(
    scheme: str, make_bus: Callable[[str], RemoteBus]
) -> None:
    """``open`` returns (unhealthy) without a broker, and the bus connects once it is there."""
    forwarder = Forwarder(require_service(REDIS_URL if scheme == "redis" else NATS_URL))
    await forwarder.start()
    await forwarder.cut()
    bus = make_bus(through(forwarder, bus_url_for(scheme)))
    try:
        await asyncio.wait_for(bus.open(), 5)
        assert not bus.healthy
        bus.publish(notice(1))  # accepted, no error
        await forwarder.restore()
        await eventually(lambda: bus.healthy)
    finally:
        await forwarder.aclose()


class RefusingConnector:
    """A broker address where nothing listens: every attempt fails at once."""

    name = "refusing"

    def __init__(self) -> None:
        self.attempts = 0

    async def connect(self) -> Link:
        self.attempts += 1
        raise ConnectionRefusedError("nothing listens there")


async def test_open_returns_after_a_refused_first_attempt_without_retrying_first() -> None:
    """A refused connection does not hold the node's start: ``open`` returns on the first
    attempt's failure (degraded), where it used to sit out the whole open wait retrying."""
    connector = RefusingConnector()
    bus = RemoteBus(connector, Backoff(base=0.05, cap=0.05))
    try:
        await asyncio.wait_for(bus.open(), 5)
        assert connector.attempts == 1 and not bus.healthy
        await eventually(lambda: connector.attempts > 1)  # it keeps trying in the background
    finally:
        await bus.aclose()


def test_a_pending_notice_folds_heads_per_origin() -> None:
    """Folding keeps the highest seq of every origin and the earliest commit time."""
    folded = fold(CommitNotice({"a": 3, "b": 1}, 5.0), CommitNotice({"a": 2, "c": 4}, 7.0))
    assert folded == CommitNotice({"a": 3, "b": 1, "c": 4}, 5.0)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[]",
        b'{"s": 1, "h": {}, "at": 1}',
        b'{"s": "x", "h": {"r": "1"}, "at": 1}',
    ],
)
def test_a_payload_that_is_not_a_notice_is_ignored(payload: bytes) -> None:
    """Foreign or corrupt messages on the channel decode to nothing."""
    assert decode(payload) is None


def test_a_notice_survives_the_wire() -> None:
    """encode and decode are inverse."""
    assert decode(encode("me", notice(7))) == ("me", notice(7))
