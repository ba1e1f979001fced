"""ReadCache against a model (hypothesis): whatever the interleaving of reads, commits, racing
reads, follower invalidations and evictions, a read never returns a state older than the last
commit that completed before it started (read-your-writes on one node)."""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from breakwater.cache.memory import MemoryCache
from breakwater.core.engine import StoredDoc
from breakwater.obs.metrics import Metrics
from breakwater.server.read_cache import ReadCache

DOCS = st.sampled_from(["a", "b", "c"])


def stored(doc_id: str, version: int) -> StoredDoc:
    """Document ``doc_id`` at ``version``."""
    return StoredDoc("notes", doc_id, {}, {"v": version}, f"v{version}", "h", "r", version)


class CachedReads(RuleBasedStateMachine):
    """One node: a store (a dict of versions), its cache, and its follower."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        # A tiny cache, so that tokens and entries are evicted all the time.
        self.memory = MemoryCache(max_entries=4)
        self.cache = ReadCache(self.memory, Metrics(), ttl=60)
        self.store: dict[str, int] = {}
        self.seq = 0
        self.unfollowed: list[tuple[str, str, str, int]] = []
        self.loop.run_until_complete(self.cache.start())

    def teardown(self) -> None:
        self.loop.close()

    def _commit(self, doc_id: str) -> tuple[str, str, str, int]:
        self.seq += 1
        self.store[doc_id] = self.seq
        change = ("notes", doc_id, "r", self.seq)
        self.unfollowed.append(change)
        return change

    def _read(self, doc_id: str, during_load: str | None = None) -> int | None:
        async def load() -> StoredDoc | None:
            version = self.store.get(doc_id)
            if during_load is not None:  # another request commits after the store read
                await self.cache.committed([self._commit(during_load)])
            return None if version is None else stored(doc_id, version)

        doc = self.loop.run_until_complete(self.cache.document("notes", doc_id, load))
        return None if doc is None else int(doc.version[1:])

    @rule(doc_id=DOCS)
    def write(self, doc_id: str) -> None:
        """A commit on this node, invalidated before it is acknowledged."""
        change = self._commit(doc_id)
        self.loop.run_until_complete(self.cache.committed([change]))

    @rule(doc_id=DOCS)
    def read(self, doc_id: str) -> None:
        """A read returns exactly the store's current version."""
        assert self._read(doc_id) == self.store.get(doc_id)

    @rule(doc_id=DOCS, other=DOCS)
    def read_racing_a_commit(self, doc_id: str, other: str) -> None:
        """A read whose store read precedes a concurrent commit answers the state it read."""
        before = self.store.get(doc_id)
        assert self._read(doc_id, during_load=other) == before

    @rule()
    def follow(self) -> None:
        """The follower meets the committed changes (this node's own: already invalidated)."""
        changes, self.unfollowed = self.unfollowed, []
        self.loop.run_until_complete(self.cache.followed(changes))

    @rule(data=st.data())
    def evict(self, data: st.DataObject) -> None:
        """The LRU forgets any key, tokens included."""
        keys = list(self.memory._entries)
        if keys:
            self.memory._drop(data.draw(st.sampled_from(keys)))

    @invariant()
    def every_document_reads_its_latest_version(self) -> None:
        for doc_id, version in self.store.items():
            assert self._read(doc_id) == version


TestCachedReads = CachedReads.TestCase
TestCachedReads.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
