"""Counters through the store: the stored state stays bounded, and old states migrate."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from breakwater.core import codec
from breakwater.core.mutation import Mutation
from breakwater.storage.base import Store
from tests.storage.backends import BACKENDS, build_store, drop_schema, engine, postgres_url


def increment(mid: str, amount: int = 1, doc_id: str = "hot") -> Mutation:
    return Mutation(mid, "counters", doc_id, "increment", {"n": amount})


async def open_store(url: str) -> Store:
    store = build_store(url, engine())
    await store.open()
    return store


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A store URL of each backend, private to this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    store_url, schema = postgres_url(pool_size="2")
    yield store_url
    await drop_schema(schema)


async def test_stored_counter_state_is_bounded_and_exact(url: str) -> None:
    """5,000 increments in batches: the stored state is one base, the value exact."""
    store = await open_store(url)
    try:
        for batch in range(10):
            await store.apply([increment(f"m{batch}.{i}", 2) for i in range(500)])
        doc = await store.get("counters", "hot")
        assert doc is not None and doc.data == {"n": 10_000}
        assert len(codec.dumps(doc.state)) < 200
    finally:
        await store.aclose()


@pytest.mark.slow
async def test_100k_increments_of_one_field_keep_the_state_under_a_kilobyte(
    tmp_path: Path,
) -> None:
    """100,000 increments of one field through the engine and the SQLite store."""
    path = tmp_path / "store.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        for batch in range(200):
            await store.apply([increment(f"m{batch}.{i}") for i in range(500)])
        doc = await store.get("counters", "hot")
        assert doc is not None and doc.data == {"n": 100_000}
    finally:
        await store.aclose()
    with sqlite3.connect(path) as conn:
        (stored,) = conn.execute("SELECT state FROM docs WHERE id = 'hot'").fetchone()
    assert len(stored) < 1024


async def test_a_counter_stored_before_folding_migrates_on_its_first_write(
    tmp_path: Path,
) -> None:
    """A state written by the format before folding reads with its value and folds when next
    written; nothing is lost, and its increments stay deduplicated by mutation id."""
    path = tmp_path / "store.db"
    store = await open_store(f"sqlite:///{path}")
    await store.apply([increment("old.1", 3), increment("old.2", 4)])
    await store.aclose()
    legacy = {
        "f": {},
        "s": "",
        "x": "",
        "n": {"n": {"old.1": ["1700000000001-0000-d", 3], "old.2": ["1700000000002-0000-d", 4]}},
    }
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE docs SET state = ? WHERE id = 'hot'", (codec.dumps(legacy).decode(),))
    store = await open_store(f"sqlite:///{path}")
    try:
        before = await store.get("counters", "hot")
        assert before is not None and before.data == {"n": 7}
        results = await store.apply([increment("old.2", 4), increment("new.1", 5)])
        assert [r.status for r in results] == ["duplicate", "applied"]
        after = await store.get("counters", "hot")
        assert after is not None and after.data == {"n": 12}
    finally:
        await store.aclose()
    with sqlite3.connect(path) as conn:
        (stored,) = conn.execute("SELECT state FROM docs WHERE id = 'hot'").fetchone()
    assert "old.1" not in stored and '"b"' in stored
