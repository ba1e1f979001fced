"""The sender's passes (ADR 0004, session 6 amendment): a change waits at most one pass for every
subscriber, subscribers lacking the same pages share messages, and whatever interleaves with a
pass (commits, joins, leaves, stalled connections, overflows) each subscriber gets every change
of its filter once and in order (I5)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.server.realtime import fanout as fanout_mod
from breakwater.server.realtime.fanout import Batch, Recent, RecentPage, Subscriber
from breakwater.server.realtime.wakeup import Wakeup
from tests.realtime.test_fanout import Rig, SlowSocket, catch_up, running, seqs

FILTERS: list[frozenset[str] | None] = [None, frozenset({"todos"}), frozenset({"notes"})]


async def test_a_commit_during_a_pass_reaches_the_rest_of_that_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page published while a pass runs goes, in the same pass, to every subscriber the pass
    has not reached yet, merged with the page it was sending: those wait for no second pass."""
    monkeypatch.setattr(fanout_mod, "SEND_CHUNK", 4)
    async with running(tmp_path) as rig:
        sockets = [SlowSocket(cost=0.004) for _ in range(48)]  # 12 chunks of 16 ms
        for socket in sockets:
            sub = Subscriber(None, {}, Wakeup())
            await catch_up(rig, sub)
            sub.direct = socket
        second: list[asyncio.Task[None]] = []

        def first_write(batches: list[Batch]) -> int:
            # The first subscriber's write starts the next commit while the pass goes on.
            if not second:
                second.append(asyncio.ensure_future(rig.write()))
            return sockets[0](batches)

        next(iter(rig.fanout._live)).direct = first_write  # the first to join is sent first
        await rig.write()
        deadline = time.monotonic() + 10
        while not all(sum(b.changes for b in s.messages) == 2 for s in sockets):
            assert time.monotonic() < deadline, "the two changes never reached everyone"
            await asyncio.sleep(0.01)
        await second[0]
        for socket in sockets:
            assert seqs(socket.messages) == [1, 2]
        assert [len(sockets[0].messages), len(sockets[-1].messages)] == [2, 1]
        assert sockets[-1].messages[0].cursor == {rig.store.origin: 2}


async def test_subscribers_lacking_the_same_pages_share_one_message(tmp_path: Path) -> None:
    """Everyone one page behind gets the very same message text, framed once."""
    async with running(tmp_path) as rig:
        sockets = [SlowSocket(cost=0.0) for _ in range(5)]
        for socket in sockets:
            sub = Subscriber(None, {}, Wakeup())
            await catch_up(rig, sub)
            sub.direct = socket
        await rig.write(3)
        deadline = time.monotonic() + 5
        while not all(s.messages for s in sockets):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        first = sockets[0].messages[0]
        assert all(s.messages[0] is first for s in sockets)
        assert seqs([first]) == [1, 2, 3]


async def test_quiet_subscribers_are_handed_one_shared_cursor_message(tmp_path: Path) -> None:
    """Subscribers of a collection nobody writes, at one position, are handed the same empty
    ``changes`` message carrying the cursor past the changes they skipped."""
    async with running(tmp_path) as rig:
        quiet = [Subscriber(frozenset({"notes"}), {}, Wakeup()) for _ in range(3)]
        for sub in quiet:
            await catch_up(rig, sub)
        await rig.write(2, collection="todos")
        deadline = time.monotonic() + 5
        while rig.fanout.handover(quiet[0]).cursor != {rig.store.origin: 2}:
            assert time.monotonic() < deadline, "the pass never moved the quiet cursors"
            await asyncio.sleep(0.005)
        handed = [rig.fanout.handover(sub) for sub in quiet]
        assert all(batch is handed[0] for batch in handed)
        assert handed[0].changes == 0
        assert all(not sub.queue for sub in quiet)


class Follower:
    """A subscriber and the connection a test drives for it: it takes direct writes unless
    stalled, and drains its queue or replays when :meth:`serve` runs (as a session's pump)."""

    def __init__(self, collections: frozenset[str] | None) -> None:
        self.sub = Subscriber(collections, {}, Wakeup())
        self.got: list[int] = []
        self.stalled = False

    def direct(self, batches: list[Batch]) -> int:
        if self.stalled:
            return 0
        self.got += seqs(batches)
        return len(batches)

    async def serve(self, rig: Rig) -> None:
        sub = self.sub
        sub.direct = None
        if sub.closed:
            return
        if not sub.live:
            self.got += seqs(await rig.fanout.replay(sub))
        while (batch := sub.take(rig.fanout.max_message_bytes)) is not None:
            self.got += seqs([batch])
        if sub.live and not self.stalled and not sub.queue:
            sub.direct = self.direct


steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 6)),
        st.tuples(st.just("join"), st.integers(0, len(FILTERS) - 1)),
        st.tuples(st.just("stall"), st.integers(0, 50)),
        st.tuples(st.just("leave"), st.integers(0, 50)),
        st.tuples(st.just("serve"), st.integers(0, 50)),
        st.tuples(st.just("settle"), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=40,
)


async def _run_steps(path: Path, plan: list[tuple[str, int]]) -> None:
    written: list[tuple[int, str]] = []
    followers: list[Follower] = []
    left: set[int] = set()
    async with running(path, queue_limit=8) as rig:
        for kind, arg in plan:
            if kind == "write":
                collection = "todos" if arg % 2 else "notes"
                first = rig.written + 1
                await rig.write(arg, collection)
                written += [(seq, collection) for seq in range(first, rig.written + 1)]
            elif kind == "join":
                followers.append(Follower(FILTERS[arg]))
                await followers[-1].serve(rig)
            elif followers and kind in ("stall", "leave", "serve"):
                index = arg % len(followers)
                follower = followers[index]
                if kind == "stall":
                    follower.stalled = not follower.stalled
                elif kind == "leave":
                    rig.fanout.remove(follower.sub)
                    left.add(index)
                await follower.serve(rig)
            elif kind == "settle":
                await asyncio.sleep(0.002 * arg)
        for follower in followers:
            follower.stalled = False
        deadline = time.monotonic() + 20
        for index, follower in enumerate(followers):
            wanted = [
                seq
                for seq, collection in written
                if follower.sub.collections is None or collection in follower.sub.collections
            ]
            if index in left:
                assert follower.got == wanted[: len(follower.got)]
                continue
            while len(follower.got) < len(wanted):
                assert time.monotonic() < deadline, (follower.got, wanted)
                await follower.serve(rig)
                await asyncio.sleep(0.002)
            assert follower.got == wanted


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_every_subscriber_gets_each_change_of_its_filter_once_in_order(
    plan: list[tuple[str, int]],
) -> None:
    """Commits, joins, leaves, stalls (a stalled connection overflows its queue of 8 and
    replays) in any order, with passes that yield every two subscribers: I5 for everyone."""
    original = fanout_mod.SEND_CHUNK
    fanout_mod.SEND_CHUNK = 2
    try:
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(_run_steps(Path(directory), plan))
    finally:
        fanout_mod.SEND_CHUNK = original


def page(n: int, size: int = 1) -> RecentPage:
    """A recent page of ``size`` changes ending at seq ``n``."""
    keys = [("r1", n, "todos")] * size
    return RecentPage({"r1": n}, keys, [b"x"] * size, size, 0.0)


@given(st.lists(st.one_of(st.integers(1, 4), st.none()), max_size=40), st.integers(1, 10))
def test_recent_pages_by_generation(events: list[int | None], bound: int) -> None:
    """``since`` and ``end_of`` answer for every generation still kept and refuse the rest,
    through adds past the bound and resets."""
    recent = Recent({}, max_changes=bound, max_bytes=1 << 20)
    history: dict[int, tuple[RecentPage | None, dict[str, int]]] = {0: (None, {})}
    seq = 0
    for event in events:
        if event is None:
            recent.reset({"r1": seq})
            history[recent.generation] = (None, {"r1": seq})
        else:
            seq += 1
            added = page(seq, event)
            recent.add(added)
            history[recent.generation] = (added, added.end)
    kept_from = recent.generation - len(recent.pages)
    for generation, (_, end) in history.items():
        pages = recent.since(generation)
        if generation < kept_from:
            assert pages is None and recent.end_of(generation) is None
            continue
        assert recent.end_of(generation) == end
        assert pages is not None
        expected = [history[g][0] for g in range(generation + 1, recent.generation + 1)]
        assert pages == expected
    assert recent.since(recent.generation) == []


async def test_a_pass_visits_only_the_readers_of_the_changed_collections(tmp_path: Path) -> None:
    """A change of one collection is handed to that collection's readers and to those of every
    collection; the readers of other collections are not visited, yet their cursor moves past
    it (a heartbeat hands it over) once the pass is done."""
    async with running(tmp_path) as rig:
        subs: dict[str | None, Subscriber] = {}
        for name in ["a", "b", "c", None]:
            sub = Subscriber(None if name is None else frozenset({name}), {}, Wakeup())
            await catch_up(rig, sub)
            subs[name] = sub
        await rig.write(collection="b")
        deadline = time.monotonic() + 5
        while not (subs["b"].queue and subs[None].queue):
            assert time.monotonic() < deadline, "the change never reached its readers"
            await asyncio.sleep(0.005)
        pages = rig.fanout.recent.since(rig.fanout.recent.generation - 1)
        assert pages is not None
        assert set(rig.fanout._readers_of(pages)) == {subs["b"], subs[None]}
        while rig.fanout.handover(subs["a"]).cursor != {rig.store.origin: 1}:
            assert time.monotonic() < deadline, "the quiet reader's cursor never moved"
            await asyncio.sleep(0.005)
        assert not subs["a"].queue and not subs["c"].queue
        assert seqs(list(subs["b"].queue)) == [1]


async def test_a_quiet_reader_gets_its_change_after_more_pages_than_memory_keeps(
    tmp_path: Path,
) -> None:
    """A reader of a quiet collection, live while many more pages of others went by than the
    fan-out keeps, gets the next change of its own collection live, without a replay."""
    async with running(tmp_path) as rig:
        rig.fanout.recent.max_changes = 4
        quiet = Subscriber(frozenset({"quiet"}), {}, Wakeup())
        await catch_up(rig, quiet)
        for _ in range(12):
            await rig.write(collection="busy")
        await rig.write(collection="quiet")
        deadline = time.monotonic() + 5
        while not quiet.queue:
            assert time.monotonic() < deadline, "the quiet reader never got its change"
            assert quiet.live, "the quiet reader was sent back to replay"
            await asyncio.sleep(0.005)
        assert seqs(list(quiet.queue)) == [13]
        assert quiet.queue[-1].cursor == {rig.store.origin: 13}
        assert rig.metrics.realtime_overflows._value.get() == 0
