"""The feed follower and the read cache over this node's own commits (ADR 0065): what the node
invalidated itself is not read back, and everything else still reaches the cache."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.auth.policy import Policy
from breakwater.bus.memory import MemoryBus
from breakwater.cache.memory import MemoryCache
from breakwater.core import codec
from breakwater.core.cursor import covers_all
from breakwater.core.engine import Engine, StoredDoc
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.obs.metrics import Metrics
from breakwater.server.application.feed import FeedFollower
from breakwater.server.application.writes import Writes
from breakwater.server.read_cache import ReadCache
from breakwater.server.store_hooks import NodeStoreHooks
from breakwater.storage.sqlite import SqliteStore
from tests.server.test_feed import Recorder, until

Writer = Literal["own", "untold", "foreign"]
"""Who commits: this node through its write path; this node's store without telling the
cache (a writer cancelled between its commit and its answer); another process's store on
the same file, whose commits no notice of this node announces."""


class Node:
    """A node's follower with its read cache first and another consumer after it, the write
    path that tells the cache, and a second store on the same SQLite file."""

    def __init__(self, path: Path) -> None:
        self.bus = MemoryBus()
        clock = HybridClock("n1")
        self.store = SqliteStore(
            path, Engine("r1", clock), hooks=NodeStoreHooks(Metrics(), self.bus)
        )
        self.foreign = SqliteStore(path, Engine("r1", HybridClock("n2")))
        self.cache = ReadCache(MemoryCache(), Metrics(), ttl=60)
        self.writes = Writes(self.store, self.cache, Policy(), clock, Metrics())
        # No poll within a test: only notices move the follower.
        self.feed = FeedFollower(self.store, self.bus, page_size=3, poll_interval=60.0)
        self.other = Recorder("other", [])
        self.other.wants = False
        self.feed.subscribe(self.cache)
        self.feed.subscribe(self.other)
        self.commits = 0

    async def open(self) -> None:
        """Open both stores and the cache, and start following."""
        await self.store.open()
        await self.foreign.open()
        await self.cache.start()
        await self.feed.start()

    async def aclose(self) -> None:
        """Stop following and close both stores."""
        await self.feed.aclose()
        await self.foreign.aclose()
        await self.store.aclose()

    async def write(self, writer: Writer, doc_id: str) -> None:
        """Commit a new version of ``doc_id`` as ``writer``."""
        self.commits += 1
        mutation = Mutation(f"m{self.commits}", "notes", doc_id, "set", {"v": self.commits})
        if writer == "own":
            [result] = await self.writes.apply([mutation], "push")
        else:
            store = self.store if writer == "untold" else self.foreign
            [result] = await store.apply([mutation])
        assert result.status == "applied"

    async def cached(self, doc_id: str) -> int | None:
        """``doc_id``'s ``v`` as the cache answers it (loading from the store on a miss)."""

        async def load() -> StoredDoc | None:
            return await self.store.get("notes", doc_id)

        doc = await self.cache.document("notes", doc_id, load)
        return None if doc is None else int(codec.loads(doc.body)["data"]["v"])

    async def stored(self, doc_id: str) -> int | None:
        """``doc_id``'s ``v`` in the store."""
        doc = await self.store.get("notes", doc_id)
        return None if doc is None or doc.data is None else int(doc.data["v"])

    async def settled(self) -> None:
        """Wait until the follower has passed every commit announced so far."""
        head = await self.store.head()
        await until(lambda: covers_all(self.feed.position, head))
        assert covers_all(self.feed.position, head)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """An open node."""
    opened = Node(tmp_path / "s.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_own_commits_are_not_read_back_for_the_cache(node: Node) -> None:
    """With only the read cache wanting changes, commits the node made through its write path
    move the follower without a store read, and the cache still answers the newest version."""
    for doc_id in ("a", "b", "a", "c"):
        await node.write("own", doc_id)
        await node.settled()
    assert node.other.seqs == []
    assert node.other.restarts[-1] == node.feed.position == {node.store.origin: 4}
    assert await node.cached("a") == 3
    assert not node.cache._done  # what the follower moved past is forgotten


@pytest.mark.parametrize("writer", ["untold", "foreign"])
async def test_a_commit_between_own_ones_that_the_cache_was_not_told_of_is_read(
    node: Node, writer: Writer
) -> None:
    """An own commit's notice whose range holds a commit this node did not invalidate (another
    process's, or its own untold one) is read, and the cache forgets the old version."""
    await node.write("own", "a")
    await node.settled()
    assert await node.cached("a") == 1
    await node.write(writer, "a")
    await node.write("own", "b")
    await node.settled()
    assert node.other.seqs[0] == 2  # read, with the own one after it when that was pending
    assert await node.cached("a") == 2


async def test_a_consumer_wanting_every_change_still_gets_own_commits(node: Node) -> None:
    """While another consumer wants the changes (the fan-out with a live subscriber), own
    commits are read and delivered, in order, once each."""
    node.other.wants = True
    for doc_id in ("a", "b", "c"):
        await node.write("own", doc_id)
    await node.settled()
    assert node.other.seqs == [1, 2, 3]


Step = tuple[Writer, str, bool]
"""Who commits, which document, and whether the other consumer wants changes meanwhile."""


async def _interleave(path: Path, steps: list[Step]) -> None:
    node = Node(path)
    await node.open()
    wanted: list[int] = []
    try:
        for writer, doc_id, wants in [*steps, ("own", "a", False)]:
            node.other.wants = wants
            await node.write(writer, doc_id)
            if wants:
                wanted.append(node.commits)
            if writer != "own":
                continue  # no notice, or one racing the next commit: the next own one settles
            await node.settled()
            for each in ("a", "b"):  # every commit the follower passed is in the cache
                assert await node.cached(each) == await node.stored(each)
        seqs = node.other.seqs
        assert seqs == sorted(set(seqs))
        assert set(wanted) <= set(seqs)
    finally:
        await node.aclose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["own", "untold", "foreign"]), st.sampled_from("ab"), st.booleans()
        ),
        max_size=10,
    )
)
def test_the_cache_holds_every_commit_the_follower_passed(steps: list[Step]) -> None:
    """Whatever the interleaving of own, untold and foreign commits and of another consumer
    wanting changes or not: once the follower passed a commit, the cache answers no older
    version, and the other consumer gets the changes it wanted once each, in order."""
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_interleave(Path(directory) / "s.db", steps))
