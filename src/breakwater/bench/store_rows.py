"""The store's own rows written by the driver alone: the floor of the data model.

Raw inserts (one 1 KB row under one index) measure what the disk and the database can do. A
node writes more per document: it reads which mutation ids are known and which documents exist,
then writes the document row (visible data, packed CRDT state, version) and its feed entry
under five indexes, and moves its origin's head. This benchmark runs exactly those statements,
the store's own, with the store's connection settings, on values computed before the clock
starts. Its rate is what the schema costs with no Python path at all: the node's ceiling, and
against raw inserts, the share of raw's rate that the data model leaves for everything else.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from breakwater.bench.stats import median
from breakwater.core import codec, document
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.storage import _bodies, _pg_batch, _pg_schema, _sqlite_schema
from breakwater.storage import _sqlite_batch as sql
from breakwater.storage.postgres import PostgresStore
from breakwater.storage.sqlite import connect

ORIGIN = "bench"
COLLECTION = "bench"


def floor_report(
    raw_rates: list[float], row_rates: list[float], node_rates: list[float], target: float
) -> dict[str, object]:
    """The report's ``store_rows_batch_100``: medians of the runs of raw inserts, of the
    store's rows and of the node (batch 100, one connection), and the figures per document."""
    raw, rows = median(raw_rates), median(row_rates)
    return {
        "docs_per_s": round(rows),
        "ratio_to_raw": round(rows / raw, 3),
        "per_document": per_document(raw, rows, median(node_rates), target),
    }


def per_document(raw: float, rows: float, node: float, target: float) -> dict[str, float]:
    """Microseconds per document of raw inserts, of the store's rows and of the node, and what
    the ``target`` ratio to raw would leave the node beyond writing its rows."""
    return {
        "raw_us": round(1e6 / raw, 2),
        "store_rows_us": round(1e6 / rows, 2),
        "node_us": round(1e6 / node, 2),
        "left_at_target_us": round(1e6 / (target * raw) - 1e6 / rows, 2),
        "node_beyond_rows_us": round(1e6 / node - 1e6 / rows, 2),
        "target": target,
    }


@dataclass(frozen=True)
class DocumentColumns:
    """The stored form of one pushed document: what the engine would have computed for it."""

    data: str
    state: str
    version: str
    hlc: str

    @classmethod
    def of(cls, payload: bytes) -> DocumentColumns:
        """The columns of a ``set`` of ``payload`` on a new document."""
        hlc = HybridClock(ORIGIN).now()
        _, state, visible, _ = document.apply(None, "", "set", codec.loads(payload), hlc, "m")
        return cls(
            data=codec.dumps(visible).decode(),
            state=codec.dumps(document.pack(state)).decode(),
            version=document.version(state),
            hlc=hlc,
        )


def sqlite_rate(payload: bytes, batch: int, seconds: float) -> float:
    """Documents/s of the SQLite writer's statements for groups of ``batch`` new documents."""
    with tempfile.TemporaryDirectory(prefix="bw-bench-rows-") as tmp:
        return write_sqlite(Path(tmp) / "rows.db", payload, batch, seconds)


def write_sqlite(path: Path, payload: bytes, batch: int, seconds: float) -> float:
    """Write groups into a new store database at ``path`` for ``seconds``; documents/s."""
    columns = DocumentColumns.of(payload)
    conn = connect(path)
    try:
        _sqlite_schema.migrate(conn)
        return _sqlite_groups(conn, columns, batch, seconds)
    finally:
        conn.close()


def _sqlite_groups(
    conn: sqlite3.Connection, columns: DocumentColumns, batch: int, seconds: float
) -> float:
    c = columns
    body = _bodies.pack(c.data.encode())  # as the writer stores it (ADR 0050)
    marks = ", ".join("?" * batch)
    known_mutations = sql.KNOWN_MUTATIONS.format(marks=marks)
    known_docs = sql.KNOWN_DOCS.format(marks=marks)
    docs = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        ids = [f"doc-{docs + k}" for k in range(batch)]
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(known_mutations, ids).fetchall()
        conn.execute(known_docs, [COLLECTION, *ids]).fetchall()
        last = conn.execute(sql.LAST_LSN).fetchone()[0]
        conn.executemany(
            sql.INSERT_CHANGES,
            [
                (last + k + 1, ORIGIN, docs + k + 1, COLLECTION, i, i, c.hlc, "set", 0)
                for k, i in enumerate(ids)
            ],
        )
        conn.executemany(
            sql.UPSERT_DOCS,
            [
                (
                    COLLECTION,
                    i,
                    body,
                    c.state,
                    c.version,
                    c.hlc,
                    ORIGIN,
                    docs + k + 1,
                    last + k + 1,
                    0,
                )
                for k, i in enumerate(ids)
            ],
        )
        conn.executemany(sql.UPSERT_ORIGINS, [(ORIGIN, docs + batch, c.hlc)])
        conn.execute("COMMIT")
        docs += batch
    return docs / (time.perf_counter() - started)


async def postgres_rate(url: str, payload: bytes, batch: int, seconds: float) -> float:
    """Documents/s of the PostgreSQL writer's two statements for groups of ``batch`` new
    documents (the snapshot read, then the write that takes the head's lock and commits), from
    one connection, as a node's writer runs them."""
    columns = DocumentColumns.of(payload)
    store = PostgresStore(url, Engine(ORIGIN, HybridClock(ORIGIN)))
    await store.open()  # creates the schema
    await store.aclose()
    conn = await asyncpg.connect(
        store.settings.dsn,
        server_settings={
            "synchronous_commit": "on",
            "search_path": _pg_schema.quote_ident(store.settings.schema),
        },
    )
    docs = 0
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            ids = [f"doc-{docs + k}" for k in range(batch)]
            rows = await conn.fetch(_pg_batch.READ, ids, [COLLECTION] * batch, ids)
            head = next(row[8] for row in rows if row[0] == "h")
            lsns = list(range(head + 1, head + batch + 1))
            seqs = list(range(docs + 1, docs + batch + 1))
            written = await conn.fetchval(
                _pg_batch.WRITE_CLAIMED,
                *_pg_group(columns, ids, lsns, seqs),
                head,
                ORIGIN,
                docs,
                True,
                [COLLECTION] * batch,
                ids,
                ids,
            )
            if written is None:
                raise RuntimeError("a row the group read changed: another writer uses this schema")
            docs += batch
    finally:
        await conn.close()
    return docs / (time.perf_counter() - started)


def _pg_group(
    columns: DocumentColumns, ids: list[str], lsns: list[int], seqs: list[int]
) -> list[object]:
    """The parameters ``$1`` to ``$30`` of :data:`_pg_batch.WRITE_CLAIMED` for new documents."""
    n = len(ids)
    return [
        lsns,
        [ORIGIN] * n,
        seqs,
        [COLLECTION] * n,
        ids,
        ids,
        [columns.hlc] * n,
        ["set"] * n,
        0,
        [COLLECTION] * n,
        ids,
        [columns.data] * n,
        [columns.state] * n,
        [columns.version] * n,
        [columns.hlc] * n,
        [ORIGIN] * n,
        seqs,
        lsns,
        [False] * n,
        [ORIGIN],
        [seqs[-1]],
        [columns.hlc],
        *([] for _ in range(7)),  # no conflicts
        lsns[-1],
    ]
