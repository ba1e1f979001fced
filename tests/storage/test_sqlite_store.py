"""The SQLite store: group commit, exactly-once apply, the gap-free feed, retention, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from breakwater.core import cursor
from breakwater.core.collections import CollectionConfig
from breakwater.core.engine import Engine
from breakwater.core.errors import CursorExpired, StoreUnavailable
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage import _sqlite_schema
from breakwater.storage.sqlite import SqliteStore


def put(mid: str, doc_id: str, data: dict[str, Any] | None = None, **kw: Any) -> Mutation:
    """A set mutation."""
    return Mutation(mid, "todos", doc_id, "set", data if data is not None else {"v": mid}, **kw)


def inc(mid: str, doc_id: str, amount: int = 1) -> Mutation:
    """An increment of field n."""
    return Mutation(mid, "todos", doc_id, "increment", {"n": amount})


class CountingHooks:
    """Counts group commits and records feed notifications."""

    def __init__(self) -> None:
        self.commits: list[int] = []
        self.advanced: list[tuple[dict[str, int], float]] = []

    def on_commit(self, mutations: int, seconds: float) -> None:
        self.commits.append(mutations)

    def on_conflict(self, collection: str) -> None:
        pass

    def on_feed_advanced(self, head: dict[str, int], at: float) -> None:
        self.advanced.append((head, at))


async def read_feed(store: SqliteStore, limit: int = 7) -> list[tuple[str, int]]:
    """Follow the feed from the empty cursor to the end; return the (origin, seq) seen."""
    vector: dict[str, int] = {}
    seen = []
    while True:
        page = await store.pull(vector, None, limit)
        seen += [(e.change.origin, e.change.seq) for e in page.entries]
        vector = page.vector
        if not page.has_more:
            return seen


async def test_apply_allocates_increasing_seqs_in_order(store: SqliteStore) -> None:
    """Results come back in order with consecutive seqs of the store's origin."""
    results = await store.apply([put("m1", "a"), put("m2", "b"), put("m3", "a")])
    assert [(r.status, r.origin, r.seq) for r in results] == [
        ("applied", "r1", 1),
        ("applied", "r1", 2),
        ("applied", "r1", 3),
    ]


async def test_duplicate_in_the_same_batch_applies_once(store: SqliteStore) -> None:
    """The same mutation twice in one call is applied, then reported duplicate."""
    results = await store.apply([inc("m1", "a"), inc("m1", "a")])
    assert [r.status for r in results] == ["applied", "duplicate"]
    assert results[1].seq == results[0].seq
    doc = await store.get("todos", "a")
    assert doc is not None and doc.data == {"n": 1}


async def test_concurrent_pushes_of_one_mutation_apply_once(store: SqliteStore) -> None:
    """I2: 50 concurrent pushes of one increment count once and all name the same change."""
    results = await asyncio.gather(*(store.apply([inc("same", "a", 5)]) for _ in range(50)))
    statuses = sorted(r[0].status for r in results)
    assert statuses == ["applied"] + ["duplicate"] * 49
    assert {(r[0].origin, r[0].seq) for r in results} == {("r1", 1)}
    doc = await store.get("todos", "a")
    assert doc is not None and doc.data == {"n": 5}


async def test_duplicates_survive_reopen(tmp_path: Path) -> None:
    """I2: after the store is closed and reopened, a known mutation id is still a duplicate."""
    path = tmp_path / "s.db"
    first = SqliteStore(path, Engine("r1", HybridClock("n1")))
    await first.open()
    [applied] = await first.apply([inc("m1", "a", 3)])
    await first.aclose()
    second = SqliteStore(path, Engine("r1", HybridClock("n2")))
    await second.open()
    [again] = await second.apply([inc("m1", "a", 3)])
    doc = await second.get("todos", "a")
    await second.aclose()
    assert again.status == "duplicate" and again.seq == applied.seq
    assert doc is not None and doc.data == {"n": 3}


async def test_concurrent_requests_share_commits(tmp_path: Path) -> None:
    """Group commit: 200 concurrent single-mutation calls take far fewer than 200 commits."""
    hooks = CountingHooks()
    store = SqliteStore(tmp_path / "s.db", Engine("r1", HybridClock("n1")), hooks=hooks)
    await store.open()
    await asyncio.gather(*(store.apply([put(f"m{i}", f"d{i}")]) for i in range(200)))
    await store.aclose()
    assert sum(hooks.commits) == 200
    assert len(hooks.commits) < 100


async def test_feed_advances_are_announced_on_the_loop_after_commit(tmp_path: Path) -> None:
    """``on_feed_advanced`` runs on the event loop, once the change is readable elsewhere."""
    path = tmp_path / "s.db"
    seen: list[tuple[dict[str, int], int, int]] = []
    loop_thread = threading.get_ident()

    class Hooks(CountingHooks):
        def on_feed_advanced(self, head: dict[str, int], at: float) -> None:
            # Another connection must already see the change: the notice follows COMMIT.
            with contextlib.closing(sqlite3.connect(path)) as conn:
                visible = conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0]
            seen.append((head, visible, threading.get_ident()))

    store = SqliteStore(path, Engine("r1", HybridClock("n1")), hooks=Hooks())
    await store.open()
    try:
        await store.apply([put("m1", "a"), put("m2", "b"), put("m3", "c")])
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
    finally:
        await store.aclose()
    assert seen == [({"r1": 3}, 3, loop_thread)]


async def test_a_commit_that_writes_nothing_announces_nothing(tmp_path: Path) -> None:
    """Duplicates only: no feed entry was written, so no advance is announced."""
    hooks = CountingHooks()
    store = SqliteStore(tmp_path / "s.db", Engine("r1", HybridClock("n1")), hooks=hooks)
    await store.open()
    try:
        await store.apply([put("m1", "a")])
        await store.apply([put("m1", "a")])
        await asyncio.sleep(0.05)
    finally:
        await store.aclose()
    assert [head for head, _ in hooks.advanced] == [{"r1": 1}]


async def test_failure_inside_one_request_fails_only_that_request(tmp_path: Path) -> None:
    """An unexpected error while applying one caller's mutations rolls back only that caller."""

    def explode(doc: dict[str, Any]) -> None:
        if doc.get("boom"):
            raise RuntimeError("validator bug")

    engine = Engine(
        "r1", HybridClock("n1"), {"todos": CollectionConfig("todos", validator=explode)}
    )
    store = SqliteStore(tmp_path / "s.db", engine)
    await store.open()
    good, bad = await asyncio.gather(
        store.apply([put("m1", "a")]),
        store.apply([put("m2", "b"), put("m3", "c", {"boom": True})]),
        return_exceptions=True,
    )
    assert not isinstance(good, BaseException) and good[0].status == "applied"
    assert isinstance(bad, RuntimeError)
    assert await store.get("todos", "b") is None
    assert await read_feed(store) == [("r1", 1)]
    await store.aclose()


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    """After aclose every call raises StoreUnavailable."""
    store = SqliteStore(tmp_path / "s.db", Engine("r1", HybridClock("n1")))
    await store.open()
    await store.aclose()
    with pytest.raises(StoreUnavailable):
        await store.apply([put("m1", "a")])
    with pytest.raises(StoreUnavailable):
        await store.get("todos", "a")


async def test_aclose_flushes_queued_writes(tmp_path: Path) -> None:
    """Writes queued before aclose are committed, not dropped."""
    path = tmp_path / "s.db"
    store = SqliteStore(path, Engine("r1", HybridClock("n1")))
    await store.open()
    pending = [asyncio.ensure_future(store.apply([put(f"m{i}", f"d{i}")])) for i in range(50)]
    await asyncio.sleep(0)
    await store.aclose()
    results = await asyncio.gather(*pending)
    assert all(r[0].status == "applied" for r in results)
    count = sqlite3.connect(path).execute("SELECT COUNT(*) FROM docs").fetchone()[0]
    assert count == 50


@pytest.mark.parametrize("round_", range(3))
async def test_feed_is_gap_free_under_concurrent_writers(tmp_path: Path, round_: int) -> None:
    """I3: two stores on one file (two writers) and a live reader: every seq once, in order."""
    path = tmp_path / "s.db"
    writers = [SqliteStore(path, Engine("r1", HybridClock(f"n{i}"))) for i in range(2)]
    for writer in writers:
        await writer.open()
    reader = SqliteStore(path, Engine("r1", HybridClock("reader")))
    await reader.open()
    total = 600
    done = asyncio.Event()
    rnd = random.Random(round_)

    async def write(writer: SqliteStore, offset: int) -> None:
        for batch in range(0, total // 2, 5):
            mutations = [put(f"w{offset}-{batch + k}", f"d{rnd.randint(0, 40)}") for k in range(5)]
            await asyncio.gather(*(writer.apply([m]) for m in mutations))

    async def follow() -> list[tuple[str, int]]:
        vector: dict[str, int] = {}
        seen: list[tuple[str, int]] = []
        while True:
            finished = done.is_set()
            page = await reader.pull(vector, None, rnd.randint(1, 20))
            seen += [(e.change.origin, e.change.seq) for e in page.entries]
            assert cursor.covers(page.vector, "r1", max((s for _, s in seen), default=0))
            vector = page.vector
            if finished and not page.has_more:
                return seen
            await asyncio.sleep(0)

    follower = asyncio.ensure_future(follow())
    await asyncio.gather(write(writers[0], 0), write(writers[1], 1))
    done.set()
    seen = await follower
    for store in (*writers, reader):
        await store.aclose()
    assert seen == [("r1", seq) for seq in range(1, total + 1)]


async def test_pull_filters_collections_and_still_advances(store: SqliteStore) -> None:
    """A filtered pull returns only its collections, and its cursor moves past the others."""
    await store.apply([put("m1", "a"), Mutation("m2", "notes", "x", "set", {"t": 1})])
    page = await store.pull({}, ["notes"], 10)
    assert [e.change.collection for e in page.entries] == ["notes"]
    assert page.vector == {"r1": 2}
    again = await store.pull(page.vector, ["notes"], 10)
    assert again.entries == []


async def test_compaction_expires_old_cursors_but_not_full_sync(tmp_path: Path) -> None:
    """Past the horizon: superseded changes and tombstones go, old cursors get CursorExpired,
    the empty cursor still yields every live document."""
    now = [1_000_000]
    store = SqliteStore(tmp_path / "s.db", Engine("r1", HybridClock("n1")), clock_ms=lambda: now[0])
    await store.open()
    await store.apply([put("m1", "a"), put("m2", "b"), put("m3", "c")])
    await store.apply([put("m4", "a"), Mutation("m5", "todos", "b", "delete", None)])
    old_cursor = {"r1": 1}
    now[0] += 10_000
    report = await store.compact(horizon_ms=5_000)
    assert report.changes_removed == 3  # m1 (superseded), m2 (superseded), m5 (tombstone)
    assert report.tombstones_purged == 1
    with pytest.raises(CursorExpired):
        await store.pull(old_cursor, None, 10)
    page = await store.pull({}, None, 10)
    assert sorted(e.change.doc_id for e in page.entries) == ["a", "c"]
    assert (await store.pull(page.vector, None, 10)).entries == []
    await store.aclose()


async def test_compaction_keeps_recent_changes(store: SqliteStore) -> None:
    """Nothing newer than the horizon is removed and no cursor expires."""
    await store.apply([put("m1", "a"), put("m2", "a")])
    report = await store.compact(horizon_ms=60_000)
    assert report.changes_removed == 0
    assert len((await store.pull({"r1": 0}, None, 10)).entries) == 2


async def test_configured_index_serves_queries(tmp_path: Path) -> None:
    """A configured index is created and chosen by SQLite for filters on that field."""
    engine = Engine(
        "r1", HybridClock("n1"), {"todos": CollectionConfig("todos", indexes=("done",))}
    )
    store = SqliteStore(tmp_path / "s.db", engine)
    await store.open()
    await store.aclose()
    conn = sqlite3.connect(tmp_path / "s.db")
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM docs WHERE collection = 'todos' AND deleted = 0"
        " AND json_extract(data, '$.done') = ? ORDER BY json_extract(data, '$.done'), id",
        (1,),
    ).fetchall()
    assert any("bw_todos__done" in row[-1] for row in plan)


def test_migrations_bring_a_new_file_to_the_latest_version(tmp_path: Path) -> None:
    """A new database ends at the latest schema version, and migrating again is a no-op."""
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert _sqlite_schema.migrate(conn) == 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == _sqlite_schema.LATEST
    assert _sqlite_schema.migrate(conn) == _sqlite_schema.LATEST


def test_migrations_refuse_a_newer_database(tmp_path: Path) -> None:
    """A database from a newer Breakwater is refused with a clear error, not modified."""
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {_sqlite_schema.LATEST + 1}")
    with pytest.raises(StoreUnavailable, match="newer than this Breakwater"):
        _sqlite_schema.migrate(conn)


async def test_reopened_store_never_stamps_behind_its_writes(tmp_path: Path) -> None:
    """After a restart with the wall clock set back, new stamps still sort after old ones."""
    path = tmp_path / "s.db"
    first = SqliteStore(path, Engine("r1", HybridClock("n1")))
    await first.open()
    [old] = await first.apply([put("m1", "a")])
    await first.aclose()
    clock = HybridClock("n1", physical_ms=lambda: 1_000)  # 1970: far behind
    second = SqliteStore(path, Engine("r1", clock))
    await second.open()
    [new] = await second.apply([put("m2", "a")])
    await second.aclose()
    assert old.doc is not None and new.doc is not None
    assert new.doc.hlc > old.doc.hlc
    assert new.doc.data == {"v": "m2"}
