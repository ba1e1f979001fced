"""The node's write path on a real store and cache: admission, apply, invalidation, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from breakwater.auth.identity import Identity
from breakwater.auth.policy import Action, Policy
from breakwater.auth.rules import compile_rules
from breakwater.cache.memory import MemoryCache
from breakwater.core import hlc
from breakwater.core.engine import Engine, StoredDoc
from breakwater.core.errors import ClockSkew, Forbidden, Unauthorized
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.obs.metrics import Metrics
from breakwater.server.application.writes import Channel, Writes
from breakwater.server.read_cache import ReadCache
from breakwater.storage.sqlite import SqliteStore

ALICE = Identity("alice1")
BOB = Identity("bob123")


@pytest.fixture
async def writes(tmp_path: Path) -> AsyncIterator[Writes]:
    """A write path over an open SQLite store, a memory cache and an owner rule on ``notes``."""
    clock = HybridClock("n1", max_skew_ms=60_000)
    store = SqliteStore(tmp_path / "s.db", Engine("r1", clock))
    await store.open()
    cache = ReadCache(MemoryCache(), Metrics(), ttl=60)
    await cache.start()
    rules = {"notes": compile_rules("notes", {"read": "true", "write": "true"}, "owner")}
    try:
        yield Writes(store, cache, Policy("enforce", rules), clock, Metrics())
    finally:
        await store.aclose()


def note(mutation_id: str, owner: str, value: int = 1) -> Mutation:
    """A ``set`` of note ``n1`` owned by ``owner``."""
    return Mutation(mutation_id, "notes", "n1", "set", {"owner": owner, "v": value})


async def test_an_applied_write_is_seen_by_the_next_cached_read(writes: Writes) -> None:
    """A read cached before a write answers the new version right after ``apply`` returns."""
    await writes.apply([writes.admit(ALICE, note("m1", ALICE.uid, 1))], "push")

    async def load() -> StoredDoc | None:
        return await writes.store.get("notes", "n1")

    before = await writes.cache.document("notes", "n1", load)
    [result] = await writes.apply([writes.admit(ALICE, note("m2", ALICE.uid, 2))], "push")
    after = await writes.cache.document("notes", "n1", load)
    assert before is not None and after is not None and result.doc is not None
    assert after.version == result.doc.version != before.version


async def test_results_come_one_per_mutation_in_order(writes: Writes) -> None:
    """A replayed mutation is a duplicate; each status is counted once."""
    admitted = [writes.admit(ALICE, note("m1", ALICE.uid)), writes.admit(ALICE, note("m1", "x"))]
    results = await writes.apply(admitted, "push")
    assert [r.status for r in results] == ["applied", "duplicate"]
    assert writes.metrics.mutations.labels("applied")._value.get() == 1
    assert writes.metrics.mutations.labels("duplicate")._value.get() == 1


@pytest.mark.parametrize("channel", ["push", "rest"])
async def test_a_write_the_guard_refuses_is_rejected_and_counted_for_its_channel(
    writes: Writes, channel: Channel
) -> None:
    """The owner guard rejects Bob's write to Alice's note; the refusal is counted by channel."""
    await writes.apply([writes.admit(ALICE, note("m1", ALICE.uid))], "push")
    [result] = await writes.apply([writes.admit(BOB, note("m2", BOB.uid))], channel)
    assert result.status == "rejected" and isinstance(result.error, Forbidden)
    assert writes.metrics.access_denied.labels(channel)._value.get() == 1
    stored = await writes.store.get("notes", "n1")
    assert stored is not None and stored.data == {"owner": ALICE.uid, "v": 1}


def test_admission_refuses_an_anonymous_caller_and_a_stamp_from_the_future(
    writes: Writes,
) -> None:
    """``admit`` raises before anything is applied."""
    with pytest.raises(Unauthorized):
        writes.admit(None, note("m1", "x"))
    ahead = hlc.encode(int(time.time() * 1000) + 3_600_000, 0, "n9")
    with pytest.raises(ClockSkew):
        writes.admit(ALICE, Mutation("m2", "notes", "n1", "set", {"v": 1}, hlc=ahead))


class CountingPolicy(Policy):
    """A policy that counts how often a collection's write access is decided."""

    decided = 0

    def admit(self, identity: Identity | None, collection: str, action: Action) -> None:
        type(self).decided += 1
        super().admit(identity, collection, action)


def test_one_admission_decides_each_collection_of_a_request_once(writes: Writes) -> None:
    """A hundred mutations of one collection ask the policy once, each keeps the guard, and a
    stamp from the future is still refused at its own mutation."""
    CountingPolicy.decided = 0
    writes.policy = CountingPolicy(writes.policy.mode, writes.policy.rules)
    admit = writes.admission(ALICE)
    admitted = [admit(note(f"m{i}", ALICE.uid)) for i in range(100)]
    assert CountingPolicy.decided == 1
    assert all(m.guard is admitted[0].guard is not None for m in admitted)
    ahead = hlc.encode(int(time.time() * 1000) + 3_600_000, 0, "n9")
    with pytest.raises(ClockSkew):
        admit(Mutation("m100", "notes", "n1", "set", {"v": 1}, hlc=ahead))
    with pytest.raises(Forbidden):
        admit(Mutation("m101", "closed", "c1", "set", {"v": 1}))
