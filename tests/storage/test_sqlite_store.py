"""What only the SQLite store shows: commit visibility to other connections, index plans,
migrations. The Store contract itself is tests/storage/test_conformance.py, run on every backend."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from breakwater.core.collections import CollectionConfig
from breakwater.core.engine import Engine
from breakwater.core.errors import StoreUnavailable
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage import _sqlite_schema
from breakwater.storage._bodies import BODY_SQL
from breakwater.storage.sqlite import SqliteStore, connect
from tests.storage.backends import CountingHooks


def put(mid: str, doc_id: str, data: dict[str, Any] | None = None, **kw: Any) -> Mutation:
    """A set mutation."""
    return Mutation(mid, "todos", doc_id, "set", data if data is not None else {"v": mid}, **kw)


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
    assert seen == [({store.origin: 3}, 3, loop_thread)]


async def test_configured_index_serves_queries(tmp_path: Path) -> None:
    """A configured index is created and chosen by SQLite for filters on that field."""
    engine = Engine(
        "r1", HybridClock("n1"), {"todos": CollectionConfig("todos", indexes=("done",))}
    )
    store = SqliteStore(tmp_path / "s.db", engine)
    await store.open()
    await store.aclose()
    with contextlib.closing(connect(tmp_path / "s.db")) as conn:
        expr = f"json_extract({BODY_SQL}, '$.done')"  # over the body's text (ADR 0050)
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM docs WHERE collection = 'todos' AND deleted = 0"
            f" AND {expr} = ? ORDER BY {expr}, id",
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


async def test_a_new_store_has_8_kb_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """New files get 8 KB pages (1 KB documents pack better); a store made with 4 KB pages
    opens with them and keeps working (no rewrite, no migration)."""
    old = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(old)) as conn:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("PRAGMA journal_mode = WAL")
        _sqlite_schema.migrate(conn)
    for path, expected in ((tmp_path / "new.db", 8192), (old, 4096)):
        store = SqliteStore(path, Engine("r1", HybridClock("n1")))
        await store.open()
        try:
            await store.apply([put(f"m-{expected}", "a")])
            assert (await store.get("todos", "a")) is not None
        finally:
            await store.aclose()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA page_size").fetchone()[0] == expected
