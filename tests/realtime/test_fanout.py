"""The fan-out on a real store and bus: replay, the switch to live, filters, overflow (I5)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from breakwater.bus import CommitNotice
from breakwater.bus.memory import MemoryBus
from breakwater.core import codec
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.obs.metrics import Metrics
from breakwater.server.application.feed import FeedFollower
from breakwater.server.realtime.fanout import Batch, Fanout, Subscriber
from breakwater.server.realtime.pacing import FanoutPacer
from breakwater.server.realtime.wakeup import Wakeup
from breakwater.server.store_hooks import NodeStoreHooks
from breakwater.storage.base import FeedPage
from breakwater.storage.sqlite import SqliteStore


class EveryPage:
    """A consumer that wants every change, as a node's memory cache does; keeps what it got."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    def wants_changes(self, since: VersionVector, head: VersionVector) -> bool:
        """Always."""
        return True

    def restart(self, head: VersionVector) -> None:
        """Nothing to forget."""

    async def deliver(self, page: FeedPage, at: float) -> None:
        """Keep the page's seqs."""
        self.seqs += [entry.change.seq for entry in page.entries]


class Rig:
    """A store that publishes commit notices, a bus, and a running fan-out over them."""

    def __init__(
        self,
        tmp_path: Path,
        queue_limit: int = 1000,
        pacer: FanoutPacer | None = None,
        reader: EveryPage | None = None,
    ) -> None:
        self.metrics = Metrics()
        self.bus = MemoryBus()
        engine = Engine("r1", HybridClock("n1"))
        self.store = SqliteStore(
            tmp_path / "s.db", engine, hooks=NodeStoreHooks(self.metrics, self.bus)
        )
        self.feed = FeedFollower(self.store, self.bus, page_size=min(500, queue_limit))
        if reader is not None:
            self.feed.subscribe(reader)  # first, as the read cache is
        self.fanout = Fanout(
            self.store, self.feed, self.metrics, queue_limit=queue_limit, pacer=pacer
        )
        self.feed.subscribe(self.fanout)
        self.written = 0

    async def start(self) -> None:
        """Start following the feed and sending, as a node does."""
        await self.feed.start()
        await self.fanout.start()

    async def aclose(self) -> None:
        """Stop sending and following."""
        await self.fanout.aclose()
        await self.feed.aclose()

    async def write(self, count: int = 1, collection: str = "todos") -> None:
        """Apply ``count`` new documents in one commit."""
        start = self.written
        self.written += count
        await self.store.apply(
            [
                Mutation(f"m{i}", collection, f"d{i}", "set", {"i": i})
                for i in range(start, start + count)
            ]
        )


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    pacer: FanoutPacer | None = None,
    queue_limit: int = 1000,
    reader: EveryPage | None = None,
) -> AsyncIterator[Rig]:
    """A rig with its store open and its fan-out following, closed on exit."""
    opened = Rig(tmp_path, queue_limit=queue_limit, pacer=pacer, reader=reader)
    await opened.store.open()
    await opened.start()
    try:
        yield opened
    finally:
        await opened.aclose()
        await opened.store.aclose()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """An open rig with a queue limit of 1000 changes."""
    async with running(tmp_path) as opened:
        yield opened


class SlowSocket:
    """A direct writer that takes ``cost`` seconds of the loop per call, as a thousand socket
    writes would, and keeps what it was given."""

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.messages: list[Batch] = []

    def __call__(self, batches: list[Batch]) -> int:
        until = time.perf_counter() + self.cost
        while time.perf_counter() < until:
            pass
        self.messages.extend(batches)
        return len(batches)


def seqs(batches: list[Batch]) -> list[int]:
    """The seqs carried by ``batches``, in order."""
    return [c["seq"] for b in batches for c in codec.loads(b.text)["changes"]]


async def drain_live(
    sub: Subscriber, want: int, seconds: float = 5.0, max_bytes: int = 256 * 1024
) -> list[Batch]:
    """Take queued batches until ``want`` changes arrived (or fail after ``seconds``)."""
    taken: list[Batch] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while sum(b.changes for b in taken) < want:
        batch = sub.take(max_bytes)
        if batch is None:
            assert loop.time() < deadline, f"only {len(seqs(taken))} of {want} changes arrived"
            sub.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wakeup.wait(), 0.05)
            continue
        taken.append(batch)
    return taken


async def catch_up(rig: Rig, sub: Subscriber) -> list[Batch]:
    """Replay until ``sub`` is live (bounded)."""
    batches: list[Batch] = []
    for _ in range(100):
        batches += await rig.fanout.replay(sub)
        if sub.live:
            return batches
    raise AssertionError("the subscriber never caught up")


async def receive(rig: Rig, sub: Subscriber, want: int) -> list[Batch]:
    """Catch up, then take live batches, until ``want`` changes arrived.

    Changes the follower had not published yet when the catch-up ended come live.
    """
    batches = await catch_up(rig, sub)
    got = sum(b.changes for b in batches)
    if got < want:
        batches += await drain_live(sub, want - got, max_bytes=rig.fanout.max_message_bytes)
    return batches


async def test_a_new_subscriber_replays_then_goes_live(rig: Rig) -> None:
    """Replay brings the history, then live pages bring later commits, each change once."""
    await rig.write(5)
    sub = Subscriber(None, {}, Wakeup())
    replayed = await receive(rig, sub, 5)
    assert seqs(replayed) == [1, 2, 3, 4, 5]
    await rig.write(3)
    assert seqs(await drain_live(sub, 3)) == [6, 7, 8]
    assert codec.loads(replayed[-1].text)["cursor"] == replayed[-1].cursor_text


async def test_live_pages_already_replayed_are_dropped(rig: Rig) -> None:
    """A replay that read past the follower's position gets only the changes it lacks."""
    sub = Subscriber(None, {}, Wakeup())
    # Commit while the follower cannot see it yet: the replay reads ahead of the position.
    await rig.aclose()
    await rig.write(4)
    rig.feed.poll_interval = 60  # no poll during the test: only the next notice moves it
    await rig.start()
    rig.fanout.position = {}
    replayed = await catch_up(rig, sub)
    assert seqs(replayed) == [1, 2, 3, 4]
    assert not sub.aligned
    await rig.write(2)
    assert seqs(await drain_live(sub, 2)) == [5, 6]
    assert sub.aligned


async def test_a_filter_skips_other_collections_but_moves_the_cursor(rig: Rig) -> None:
    """A subscriber of ``todos`` gets no ``notes`` change, and its next cursor is past them."""
    sub = Subscriber(frozenset({"todos"}), {}, Wakeup())
    await catch_up(rig, sub)
    await rig.write(3, "notes")
    await rig.write(1, "todos")
    [batch] = await drain_live(sub, 1)
    assert seqs([batch]) == [4]
    assert batch.cursor == {rig.store.origin: 4}


async def test_one_page_is_encoded_once_for_every_subscriber_of_a_filter(rig: Rig) -> None:
    """Subscribers of the same filter share the very same message text."""
    subs = [Subscriber(None, {}, Wakeup()) for _ in range(3)]
    for sub in subs:
        await catch_up(rig, sub)
    await rig.write(2)
    texts = [(await drain_live(sub, 2))[0].text for sub in subs]
    assert texts[0] is texts[1] is texts[2]


async def test_an_overflowing_subscriber_falls_back_to_replay_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Past its queue limit a subscriber drops its queue and catches up from the store."""
    rig = Rig(tmp_path, queue_limit=10)
    await rig.store.open()
    await rig.start()
    try:
        sub = Subscriber(None, {}, Wakeup())
        await catch_up(rig, sub)
        await rig.write(4)
        first = await drain_live(sub, 4)  # taken: the replay point moves past them
        for _ in range(6):
            await rig.write(5)
        for _ in range(100):
            if not sub.live:
                break
            await asyncio.sleep(0.02)
        assert not sub.live and not sub.queue
        assert rig.metrics.realtime_overflows._value.get() == 1
        rest = await receive(rig, sub, 34 - len(seqs(first)))
        assert seqs(first + rest) == list(range(1, 35))
    finally:
        await rig.aclose()
        await rig.store.aclose()


async def test_messages_are_split_at_the_size_limit(rig: Rig) -> None:
    """A page bigger than the message limit goes out in several messages, cursors in step."""
    rig.fanout.max_message_bytes = 600
    await rig.write(12)
    sub = Subscriber(None, {}, Wakeup())
    batches = await receive(rig, sub, 12)
    assert len(batches) > 2
    assert seqs(batches) == list(range(1, 13))
    for batch in batches:
        body = codec.loads(batch.text)
        assert batch.cursor == {rig.store.origin: body["changes"][-1]["seq"]}
        assert len(batch.text) < 600 + 400


async def test_a_removed_subscriber_is_not_attached_by_a_late_replay(rig: Rig) -> None:
    """A subscriber that unsubscribes while its replay pull runs never goes live."""
    sub = Subscriber(None, {}, Wakeup())
    replay = asyncio.ensure_future(rig.fanout.replay(sub))
    rig.fanout.remove(sub)
    assert await replay == []
    await rig.write(1)
    await asyncio.sleep(0.1)
    assert not sub.live and not sub.queue


async def test_long_poll_wait_wakes_on_a_commit(rig: Rig) -> None:
    """``wait_beyond`` returns True soon after a commit past the vector it was given."""
    waiter = asyncio.ensure_future(rig.feed.wait_beyond({}, 10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await rig.write(1)
    assert await asyncio.wait_for(waiter, 2)


async def test_long_poll_wait_ends_when_draining(rig: Rig) -> None:
    """``stop_waiters`` makes pending waits answer False at once."""
    waiter = asyncio.ensure_future(rig.feed.wait_beyond({}, 10))
    await asyncio.sleep(0.05)
    rig.feed.stop_waiters()
    assert await asyncio.wait_for(waiter, 1) is False


async def test_commits_from_another_process_are_found_by_polling(tmp_path: Path) -> None:
    """A writer whose commits the bus never hears of is seen within the poll interval."""
    rig = Rig(tmp_path)
    rig.feed.poll_interval = 0.2
    await rig.store.open()
    await rig.start()
    other = SqliteStore(tmp_path / "s.db", Engine("r1", HybridClock("n2")))
    await other.open()
    try:
        sub = Subscriber(None, {}, Wakeup())
        await catch_up(rig, sub)
        await other.apply([Mutation("x1", "todos", "x", "set", {"v": 1})])
        assert seqs(await drain_live(sub, 1, seconds=3)) == [1]
    finally:
        await other.aclose()
        await rig.aclose()
        await rig.store.aclose()


class CountingStore:
    """A store proxy that counts pulls (everything else passes through)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.pulls = 0

    async def pull(self, *args: Any, **kwargs: Any) -> Any:
        self.pulls += 1
        return await self.store.pull(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_resume_from_a_recent_cursor_is_served_from_memory(rig: Rig) -> None:
    """Cursors within the recent changes catch up without a single store pull."""
    await catch_up(rig, Subscriber(None, {}, Wakeup()))  # live: the changes are kept
    await rig.write(30)
    await asyncio.sleep(0.1)  # the follower has published them
    counting = CountingStore(rig.store)
    rig.fanout.store = counting
    subs = [Subscriber(None, {rig.store.origin: k}, Wakeup()) for k in range(0, 30, 3)]
    for k, sub in zip(range(0, 30, 3), subs, strict=True):
        assert seqs(await receive(rig, sub, 30 - k)) == list(range(k + 1, 31))
    assert counting.pulls == 0


async def test_a_cursor_older_than_the_recent_changes_reads_the_store(tmp_path: Path) -> None:
    """Past the in-memory window, the catch-up pulls from the store, then joins memory."""
    rig = Rig(tmp_path)
    rig.fanout.recent.max_changes = 10
    await rig.store.open()
    await rig.start()
    try:
        await catch_up(rig, Subscriber(None, {}, Wakeup()))  # live: the changes are kept
        for _ in range(10):
            await rig.write(4)
        await asyncio.sleep(0.1)
        assert rig.fanout.recent.changes <= 10 + 4
        assert rig.fanout.recent.base[rig.store.origin] >= 26
        counting = CountingStore(rig.store)
        rig.fanout.store = counting
        rig.fanout.page_size = 8
        sub = Subscriber(frozenset({"todos"}), {rig.store.origin: 5}, Wakeup())
        assert seqs(await receive(rig, sub, 35)) == list(range(6, 41))
        assert counting.pulls >= 3  # at least 6-13, 14-21, 22-29 from the store
    finally:
        await rig.aclose()
        await rig.store.aclose()


async def _nothing_kept_and_a_resume_reads_the_store(rig: Rig) -> None:
    """After six changes passed with nobody live: none kept, and a resume from seq 2 pulls
    3-6 from the store."""
    assert rig.fanout.recent.changes == 0
    assert rig.fanout.position == {rig.store.origin: 6}
    counting = CountingStore(rig.store)
    rig.fanout.store = counting
    sub = Subscriber(None, {rig.store.origin: 2}, Wakeup())
    assert seqs(await receive(rig, sub, 4)) == [3, 4, 5, 6]
    assert counting.pulls >= 1


async def test_without_a_live_subscriber_nothing_is_kept_and_resumes_read_the_store(
    rig: Rig,
) -> None:
    """Changes committed while nobody is live are not read for the fan-out; a resume then
    pulls them from the store and misses none."""
    await rig.write(6)
    await until_position(rig, 6)
    await _nothing_kept_and_a_resume_reads_the_store(rig)


async def test_a_subscriber_live_after_unread_commits_gets_every_later_one_once(
    rig: Rig,
) -> None:
    """Going live where the follower moved on unread, a subscriber gets each later change
    once, in order, and the fan-out goes back to reading nothing once it leaves."""
    await rig.write(3)
    await until_position(rig, 3)
    sub = Subscriber(None, {}, Wakeup())
    replayed = await catch_up(rig, sub)
    assert rig.fanout.wants_changes({}, {})
    for count in (2, 1, 3):
        await rig.write(count)
    assert seqs(replayed + await drain_live(sub, 6)) == list(range(1, 10))
    rig.fanout.remove(sub)
    assert not rig.fanout.wants_changes({}, {})
    await rig.write(2)
    await until_position(rig, 11)
    assert not sub.queue
    assert rig.fanout.recent.changes == 0


async def test_pages_another_consumer_reads_are_not_kept_while_nobody_is_live(
    tmp_path: Path,
) -> None:
    """With a consumer that has every page read (the read cache), the fan-out only moves past
    them while no subscriber is live; a resume then pulls them from the store and misses none."""
    reader = EveryPage()
    async with running(tmp_path, reader=reader) as rig:
        for count in (2, 3, 1):
            await rig.write(count)
        await until_position(rig, 6)
        assert reader.seqs == [1, 2, 3, 4, 5, 6]
        await _nothing_kept_and_a_resume_reads_the_store(rig)


async def test_a_subscriber_arriving_after_pages_read_for_another_consumer_gets_each_later_once(
    tmp_path: Path,
) -> None:
    """Going live after pages the fan-out passed over, a subscriber gets every change once, in
    order; once it leaves, the fan-out keeps nothing again."""
    reader = EveryPage()
    async with running(tmp_path, reader=reader) as rig:
        await rig.write(3)
        await until_position(rig, 3)
        sub = Subscriber(None, {}, Wakeup())
        replayed = await catch_up(rig, sub)
        for count in (2, 1, 3):
            await rig.write(count)
        assert seqs(replayed + await drain_live(sub, 6)) == list(range(1, 10))
        assert rig.fanout.recent.changes == 6
        rig.fanout.remove(sub)
        await rig.write(2)
        await until_position(rig, 11)
        assert not sub.queue
        assert rig.fanout.recent.changes == 0
        late = Subscriber(None, {rig.store.origin: 9}, Wakeup())
        await rig.write(1)
        assert seqs(await receive(rig, late, 3)) == [10, 11, 12]
        assert reader.seqs == list(range(1, 13))


async def until_position(rig: Rig, seq: int) -> None:
    """Wait until the follower's position reaches ``seq`` (bounded, not a timed assertion)."""
    for _ in range(500):
        if rig.feed.position.get(rig.store.origin, 0) >= seq:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the follower stayed at {rig.feed.position}")


async def test_a_connection_that_fell_behind_gets_queued_messages_merged(rig: Rig) -> None:
    """Several queued messages are taken as one, with the last cursor and the oldest time."""
    sub = Subscriber(None, {}, Wakeup())
    await catch_up(rig, sub)
    for _ in range(3):
        await rig.write(2)
        for _ in range(100):
            if sub.queued and sub.queue[-1].cursor == {rig.store.origin: rig.written}:
                break
            await asyncio.sleep(0.01)
    assert len(sub.queue) == 3
    times = [batch.at for batch in sub.queue]
    merged = sub.take()
    assert merged is not None and not sub.queue and sub.queued == 0
    assert seqs([merged]) == [1, 2, 3, 4, 5, 6]
    assert merged.cursor == sub.resume_from == {rig.store.origin: 6}
    assert codec.loads(merged.text)["cursor"] == merged.cursor_text
    assert merged.at == min(t for t in times if t is not None)


async def test_closing_as_a_notice_arrives_still_stops_the_follower(tmp_path: Path) -> None:
    """A cancel that lands while a notice completes the follower's wait still stops it.

    Python 3.11's ``wait_for`` returns the finished result and drops such a cancel; the
    follower must stop all the same, or closing the node waits forever.
    """
    for _ in range(20):
        rig = Rig(tmp_path)
        await rig.store.open()
        await rig.start()
        await asyncio.sleep(0.01)  # the follower waits for a notice
        rig.bus.publish(CommitNotice({"r1": 0}, 0.0))
        await asyncio.wait_for(rig.aclose(), 5)
        await rig.store.aclose()
