"""The store's-rows floor writes exactly what the store writes: the store reads it back whole.

A floor that wrote lighter rows than the store would flatter the data model; these tests open
the rows it wrote with the real store and find documents, feed, dedupe and head intact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.bench import store_rows
from breakwater.bench.push import payload
from breakwater.core import codec
from breakwater.core.mutation import Mutation
from breakwater.storage.base import Store
from breakwater.storage.postgres import PostgresStore
from breakwater.storage.sqlite import SqliteStore
from tests.storage.backends import drop_schema, engine, postgres_url


async def _reads_back(store: Store, body: bytes) -> None:
    """Opened on the rows, ``store`` finds every written document, its feed entry, its
    mutation id and the head as its own writes would have left them."""
    await store.open()
    try:
        await _check(store, body)
    finally:
        await store.aclose()


async def _check(store: Store, body: bytes) -> None:
    head = await store.head()
    written = head[store_rows.ORIGIN]
    assert written > 0 and written % 10 == 0
    page = await store.pull({}, None, written)
    assert len(page.entries) == written and not page.has_more
    assert [e.change.seq for e in page.entries] == list(range(1, written + 1))
    assert all(e.data == codec.loads(body) for e in page.entries)
    doc = await store.get(store_rows.COLLECTION, "doc-0")
    assert doc is not None and doc.data == codec.loads(body)
    [again] = await store.apply(
        [Mutation("doc-0", store_rows.COLLECTION, "doc-0", "set", {"x": 1})]
    )
    assert again.status == "duplicate" and again.seq == 1
    [new] = await store.apply([Mutation("new", store_rows.COLLECTION, "new", "set", {"x": 1})])
    assert new.status == "applied"


async def test_the_sqlite_rows_are_the_stores(tmp_path: Path) -> None:
    path = tmp_path / "rows.db"
    assert store_rows.write_sqlite(path, payload(0), 10, 0.2) > 0
    await _reads_back(SqliteStore(path, engine("other")), payload(0))


async def test_the_postgres_rows_are_the_stores() -> None:
    url, schema = postgres_url()
    try:
        assert await store_rows.postgres_rate(url, payload(0), 10, 0.2) > 0
        await _reads_back(PostgresStore(url, engine("other")), payload(0))
    finally:
        await drop_schema(schema)


def test_per_document_figures_are_the_inverse_rates() -> None:
    """At raw 100,000/s, rows 50,000/s and a node at 10,000/s, a 0.40 target leaves 5 µs."""
    figures = store_rows.per_document(100_000, 50_000, 10_000, 0.40)
    assert figures["raw_us"] == pytest.approx(10)
    assert figures["store_rows_us"] == pytest.approx(20)
    assert figures["left_at_target_us"] == pytest.approx(5)
    assert figures["node_beyond_rows_us"] == pytest.approx(80)


def test_the_floor_report_takes_the_median_of_each_series() -> None:
    report = store_rows.floor_report(
        [90_000, 100_000, 200_000], [50_000, 10_000, 60_000], [10_000, 9_000, 11_000], 0.40
    )
    assert report["docs_per_s"] == 50_000 and report["ratio_to_raw"] == 0.5
    assert report["per_document"] == store_rows.per_document(100_000, 50_000, 10_000, 0.40)
