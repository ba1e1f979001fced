"""Compressed document bodies in the SQLite store (ADR 0050): how they are stored, that every
reader and query still sees the JSON, and the migration of a store made before them."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from breakwater.bench.disk import realistic_documents
from breakwater.core import codec
from breakwater.core.collections import CollectionConfig
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.core.query import Filter, Query
from breakwater.storage import _bodies, _sqlite_schema
from breakwater.storage.sqlite import SqliteStore, connect

DOCS = realistic_documents(30)


def _engine(indexes: tuple[str, ...] = ()) -> Engine:
    return Engine("r1", HybridClock("n1"), {"notes": CollectionConfig("notes", indexes=indexes)})


def _sets(documents: list[dict[str, Any]], prefix: str = "d") -> list[Mutation]:
    return [
        Mutation(f"m-{prefix}{k}", "notes", f"{prefix}{k}", "set", doc)
        for k, doc in enumerate(documents)
    ]


def _stored(path: Path) -> dict[str, tuple[str, int]]:
    """Each document's stored body: its SQL type and its length."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT id, typeof(data), length(CAST(data AS BLOB)) FROM docs")
        return {row[0]: (row[1], row[2]) for row in rows}


def test_short_bodies_stay_text_and_text_reads_as_it_is() -> None:
    """A body under the minimum is stored as its text; text (every older row) unpacks as is."""
    short = codec.dumps({"title": "milk", "done": False})
    assert _bodies.pack(short) == short.decode()
    assert _bodies.unpack(short.decode()) == short.decode()
    long = codec.dumps(DOCS[0])
    frame = _bodies.pack(long)
    assert isinstance(frame, bytes) and len(frame) < len(long)
    assert _bodies.unpack(frame) == long


async def test_realistic_documents_are_stored_compressed_and_read_back(tmp_path: Path) -> None:
    """1 KB documents are stored as frames smaller than their JSON; get, pull and query give
    back the same documents, and a short one stays text."""
    path = tmp_path / "s.db"
    store = SqliteStore(path, _engine())
    await store.open()
    try:
        await store.apply([*_sets(DOCS), Mutation("m-s", "notes", "short", "set", {"a": 1})])
        for k, doc in enumerate(DOCS):
            got = await store.get("notes", f"d{k}")
            assert got is not None and got.data == doc
        page = await store.pull({}, ["notes"], 100, include_state=True)
        assert {e.change.doc_id: e.data for e in page.entries} == {
            **{f"d{k}": doc for k, doc in enumerate(DOCS)},
            "short": {"a": 1},
        }
        queried = await store.query(Query("notes", limit=100))
        assert len(queried.docs) == len(DOCS) + 1
    finally:
        await store.aclose()
    stored = _stored(path)
    assert stored.pop("short")[0] == "text"
    assert {kind for kind, _ in stored.values()} == {"blob"}
    raw = sum(len(codec.dumps(doc)) for doc in DOCS)
    assert sum(length for _, length in stored.values()) < raw * 0.75


async def test_queries_filter_and_order_on_compressed_bodies(tmp_path: Path) -> None:
    """Filters and order on fields inside compressed bodies give what the JSON says, through a
    configured index and without one."""
    store = SqliteStore(tmp_path / "s.db", _engine(indexes=("priority",)))
    await store.open()
    try:
        await store.apply(_sets(DOCS))
        indexed = await store.query(
            Query("notes", (Filter("priority", "eq", 3),), order="priority", limit=100)
        )
        unindexed = await store.query(
            Query("notes", (Filter("done", "eq", True),), order="estimate_h", limit=100)
        )
    finally:
        await store.aclose()
    ids = {id(doc): f"d{k}" for k, doc in enumerate(DOCS)}
    assert sorted(d.doc_id for d in indexed.docs) == sorted(
        ids[id(doc)] for doc in DOCS if doc["priority"] == 3
    )
    done = sorted((doc for doc in DOCS if doc["done"]), key=lambda doc: doc["estimate_h"])
    assert [d.doc_id for d in unindexed.docs] == [ids[id(doc)] for doc in done]


def _as_before_compression(path: Path) -> None:
    """Turn the store at ``path`` into one written before ADR 0050: text bodies, an index
    over the raw column, schema version 3."""
    with contextlib.closing(connect(path)) as conn:
        conn.execute(f"UPDATE docs SET data = {_bodies.BODY_SQL}")
        conn.execute("DROP INDEX bw_notes__priority")
        conn.execute(
            "CREATE INDEX bw_notes__priority ON docs (json_extract(data, '$.priority'), id)"
            " WHERE collection = 'notes' AND deleted = 0"
        )
        conn.execute("PRAGMA user_version = 3")


async def test_a_store_from_before_compressed_bodies_migrates(tmp_path: Path) -> None:
    """A store with text bodies and an index over the raw column opens, takes compressed
    bodies in the indexed collection, and serves old and new documents from its index."""
    path = tmp_path / "s.db"
    old, new = DOCS[:15], DOCS[15:]
    store = SqliteStore(path, _engine(indexes=("priority",)))
    await store.open()
    try:
        await store.apply(_sets(old, "old"))
    finally:
        await store.aclose()
    _as_before_compression(path)
    assert {kind for kind, _ in _stored(path).values()} == {"text"}

    store = SqliteStore(path, _engine(indexes=("priority",)))
    await store.open()
    try:
        await store.apply(_sets(new, "new"))
        page = await store.query(Query("notes", (Filter("priority", "eq", 2),), limit=100))
        got = await store.get("notes", "old0")
    finally:
        await store.aclose()
    expected = [f"old{k}" for k, d in enumerate(old) if d["priority"] == 2] + [
        f"new{k}" for k, d in enumerate(new) if d["priority"] == 2
    ]
    assert sorted(d.doc_id for d in page.docs) == sorted(expected)
    assert got is not None and got.data == old[0]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == _sqlite_schema.LATEST
        (index_sql,) = conn.execute(
            "SELECT sql FROM sqlite_schema WHERE name = 'bw_notes__priority'"
        ).fetchone()
    assert _bodies.BODY_SQL in index_sql
