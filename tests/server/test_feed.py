"""The node's feed follower on a real store and bus: what its consumers are told, in which order."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.bus.memory import MemoryBus
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.obs.metrics import Metrics
from breakwater.server.application.feed import FeedFollower
from breakwater.server.store_hooks import NodeStoreHooks
from breakwater.storage.base import FeedPage
from breakwater.storage.sqlite import SqliteStore


class Recorder:
    """A consumer that records what it is told, and may fail its next deliveries."""

    def __init__(self, name: str, log: list[tuple[str, int]], fail: int = 0) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self.seqs: list[int] = []
        self.restarts: list[VersionVector] = []
        self.wants = True

    def wants_changes(self, since: VersionVector, head: VersionVector) -> bool:
        return self.wants

    def restart(self, head: VersionVector) -> None:
        self.restarts.append(head)

    async def deliver(self, page: FeedPage, at: float) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("consumer down")
        for entry in page.entries:
            self.seqs.append(entry.change.seq)
            self.log.append((self.name, entry.change.seq))


class Rig:
    """A store that publishes commit notices, a bus and a follower over them."""

    def __init__(self, tmp_path: Path, page_size: int = 3) -> None:
        self.bus = MemoryBus()
        self.store = SqliteStore(
            tmp_path / "s.db",
            Engine("r1", HybridClock("n1")),
            hooks=NodeStoreHooks(Metrics(), self.bus),
        )
        self.feed = FeedFollower(self.store, self.bus, page_size=page_size, poll_interval=0.05)
        self.written = 0

    async def write(self, count: int = 1) -> None:
        """Apply ``count`` new documents in one commit."""
        start, self.written = self.written, self.written + count
        await self.store.apply(
            [
                Mutation(f"m{i}", "todos", f"d{i}", "set", {"i": i})
                for i in range(start, start + count)
            ]
        )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A rig with its store open (the follower is started by each test)."""
    opened = Rig(tmp_path)
    await opened.store.open()
    try:
        yield opened
    finally:
        await opened.feed.aclose()
        await opened.store.aclose()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``condition()`` is true (a bounded wait, not a timed assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition() and loop.time() < deadline:  # noqa: ASYNC110  (state of another task)
        await asyncio.sleep(0.01)


async def test_consumers_start_at_the_head_and_get_only_later_changes(rig: Rig) -> None:
    """Changes committed before the start are not delivered; the head is told instead."""
    await rig.write(2)
    log: list[tuple[str, int]] = []
    consumer = Recorder("a", log)
    rig.feed.subscribe(consumer)
    await rig.feed.start()
    assert consumer.restarts == [{rig.store.origin: 2}]
    await rig.write(1)
    await until(lambda: consumer.seqs == [3])
    assert consumer.seqs == [3]


async def test_every_page_reaches_every_consumer_in_subscription_order(rig: Rig) -> None:
    """Each change reaches the first consumer before the second, once each, in feed order."""
    log: list[tuple[str, int]] = []
    first, second = Recorder("first", log), Recorder("second", log)
    rig.feed.subscribe(first)
    rig.feed.subscribe(second)
    await rig.feed.start()
    for count in (1, 4, 2):
        await rig.write(count)
    await until(lambda: len(second.seqs) == 7)
    assert first.seqs == second.seqs == list(range(1, 8))
    for seq in range(1, 8):
        assert log.index(("first", seq)) < log.index(("second", seq))
    assert rig.feed.position == {rig.store.origin: 7}


async def test_a_failing_consumer_holds_the_position_and_gets_the_page_again(rig: Rig) -> None:
    """A page a consumer failed on is delivered again; the consumers after it lose nothing."""
    log: list[tuple[str, int]] = []
    flaky, after = Recorder("flaky", log, fail=2), Recorder("after", log)
    rig.feed.subscribe(flaky)
    rig.feed.subscribe(after)
    await rig.feed.start()
    await rig.write(2)
    await until(lambda: after.seqs == [1, 2])
    assert flaky.seqs == after.seqs == [1, 2]


async def test_a_long_poll_waiter_wakes_once_the_position_moves(rig: Rig) -> None:
    """``wait_beyond`` answers True after a commit past the vector it was given."""
    await rig.feed.start()
    waiter = asyncio.ensure_future(rig.feed.wait_beyond({}, 10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await rig.write(1)
    assert await asyncio.wait_for(waiter, 5)


async def test_with_no_consumer_wanting_changes_each_head_restarts_them_unread(
    rig: Rig,
) -> None:
    """While no consumer wants the changes, none is delivered: consumers restart at each new
    head, and long-polls wake as the position moves."""
    log: list[tuple[str, int]] = []
    first, second = Recorder("first", log), Recorder("second", log)
    first.wants = second.wants = False
    rig.feed.subscribe(first)
    rig.feed.subscribe(second)
    await rig.feed.start()
    waiter = asyncio.ensure_future(rig.feed.wait_beyond({}, 10))
    for count in (2, 1):
        await rig.write(count)
    assert await asyncio.wait_for(waiter, 5)
    await until(lambda: rig.feed.position == {rig.store.origin: 3})
    assert first.seqs == second.seqs == []
    assert first.restarts[-1] == second.restarts[-1] == {rig.store.origin: 3}


async def test_a_consumer_that_starts_wanting_changes_gets_each_later_one_once(
    rig: Rig,
) -> None:
    """Changes committed after a consumer starts wanting them all reach it, in order, from
    the head the follower last moved to unread (I3 across the switch)."""
    log: list[tuple[str, int]] = []
    consumer = Recorder("a", log)
    consumer.wants = False
    rig.feed.subscribe(consumer)
    await rig.feed.start()
    await rig.write(3)
    await until(lambda: rig.feed.position == {rig.store.origin: 3})
    consumer.wants = True
    for count in (2, 1, 4):
        await rig.write(count)
    await until(lambda: len(consumer.seqs) >= 7)
    assert consumer.seqs == list(range(4, 11))
    assert consumer.restarts[-1] == {rig.store.origin: 3}


async def test_a_commit_no_notice_announces_is_met_within_a_poll_while_notices_keep_coming(
    tmp_path: Path,
) -> None:
    """Another origin's commit that no notice announces (a replicated apply by another
    process) is passed within the poll interval, though this store's notices never pause."""
    rig = Rig(tmp_path)
    rig.feed.poll_interval = 0.2
    other = SqliteStore(tmp_path / "s.db", Engine("r2", HybridClock("n2")))
    await rig.store.open()
    await other.open()
    consumer = Recorder("a", [])
    consumer.wants = False
    rig.feed.subscribe(consumer)
    await rig.feed.start()
    try:
        await other.apply([Mutation("x1", "todos", "x", "set", {})])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while other.origin not in rig.feed.position and loop.time() < deadline:
            await rig.write(1)  # a notice every few ms: never a second of silence
            await asyncio.sleep(0.01)
        assert rig.feed.position.get(other.origin) == 1
    finally:
        await rig.feed.aclose()
        await other.aclose()
        await rig.store.aclose()


async def test_a_position_behind_the_retention_horizon_restarts_consumers_at_the_head(
    rig: Rig,
) -> None:
    """When the store forgot changes past the position, consumers restart at the head and are
    not handed the forgotten changes."""
    log: list[tuple[str, int]] = []
    consumer = Recorder("a", log)
    rig.feed.subscribe(consumer)
    await rig.feed.start()
    for version in range(3):  # one document three times: the first two changes are superseded
        await rig.store.apply([Mutation(f"u{version}", "todos", "d", "set", {"v": version})])
    await until(lambda: consumer.seqs == [1, 2, 3])
    report = await rig.store.compact(0, now_ms=2**62)
    assert report.low_water == {rig.store.origin: 2}
    rig.feed.position = {
        rig.store.origin: 1
    }  # as if it had fallen behind before the retention pass
    await until(lambda: len(consumer.restarts) == 2)
    assert consumer.restarts == [{}, {rig.store.origin: 3}]
    assert consumer.seqs == [1, 2, 3]
    assert rig.feed.position == {rig.store.origin: 3}


async def _follow_commits(path: Path, page_size: int, commits: list[int], failures: int) -> None:
    rig = Rig(path, page_size)
    await rig.store.open()
    log: list[tuple[str, int]] = []
    flaky, steady = Recorder("flaky", log, fail=failures), Recorder("steady", log)
    rig.feed.subscribe(flaky)
    rig.feed.subscribe(steady)
    await rig.feed.start()
    try:
        for count in commits:
            await rig.write(count)
        total = sum(commits)
        await until(lambda: len(steady.seqs) >= total and len(flaky.seqs) >= total, 10)
        assert flaky.seqs == steady.seqs == list(range(1, total + 1))
        assert rig.feed.position == ({rig.store.origin: total} if total else {})
    finally:
        await rig.feed.aclose()
        await rig.store.aclose()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    page_size=st.integers(1, 5),
    commits=st.lists(st.integers(1, 7), max_size=6),
    failures=st.integers(0, 2),
)
def test_each_consumer_gets_every_change_once_in_feed_order(
    page_size: int, commits: list[int], failures: int
) -> None:
    """Whatever the commit sizes, the page size and a consumer's failed deliveries, every
    consumer is handed each change exactly once, in seq order (I3 for the node's consumers)."""
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_follow_commits(Path(directory), page_size, commits, failures))


async def test_a_long_poll_cancelled_as_the_feed_advances_ends_cancelled() -> None:
    """A cancel landing in the same turn as the commit that ends the wait must cancel it (on
    Python 3.11 ``wait_for`` returned the wait's result instead, and a long-poll being
    cancelled, e.g. by a device pausing its sync, went on waiting)."""
    follower = FeedFollower(None, MemoryBus())  # type: ignore[arg-type]  # no store is read
    waiting = asyncio.create_task(follower.wait_beyond({}, 30.0))
    await asyncio.sleep(0)  # it waits for the feed to advance
    follower.position = {"o": 1}
    follower._wake_waiters()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert waiting.cancelled()
