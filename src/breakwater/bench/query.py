"""``breakwater bench query``: query latency on 100k documents, indexed and not.

Loads the same documents into a collection with a configured index and one without, then times
a range query with order and limit through the store, next to the physical limit measured in the
same run: the same query on a plain SQLite table with a real column and an index.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from breakwater.bench._node import machine
from breakwater.bench.stats import median, percentile
from breakwater.core.collections import CollectionConfig
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.core.query import Filter, Query
from breakwater.storage.sqlite import SqliteStore

LOAD_BATCH = 1000


def _doc(index: int, rnd: random.Random) -> dict[str, Any]:
    return {"title": f"task {index}", "n": rnd.randint(0, 1_000_000), "done": index % 3 == 0}


async def _load(store: SqliteStore, collection: str, docs: list[dict[str, Any]]) -> None:
    for start in range(0, len(docs), LOAD_BATCH):
        await store.apply(
            [
                Mutation(f"{collection}-{i}", collection, f"d{i}", "set", docs[i])
                for i in range(start, min(start + LOAD_BATCH, len(docs)))
            ]
        )


async def _time_store(store: SqliteStore, collection: str, lows: list[int]) -> list[float]:
    timings = []
    for low in lows:
        query = Query(collection, (Filter("n", "gte", low),), order="n", limit=50)
        started = time.perf_counter()
        page = await store.query(query)
        timings.append(time.perf_counter() - started)
        if not page.docs and low < 999_000:
            raise RuntimeError("query returned nothing; the data did not load")
    return timings


def _time_raw(path: Path, docs: list[dict[str, Any]], lows: list[int]) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, title TEXT, done INTEGER)")
    conn.execute("CREATE INDEX t_n ON t (n, id)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(f"d{i}", d["n"], d["title"], int(d["done"])) for i, d in enumerate(docs)],
    )
    conn.execute("COMMIT")
    timings = []
    for low in lows:
        started = time.perf_counter()
        conn.execute(
            "SELECT id, n, title, done FROM t WHERE n >= ? ORDER BY n, id LIMIT 51", (low,)
        ).fetchall()
        timings.append(time.perf_counter() - started)
    conn.close()
    return timings


def _summary(timings: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(timings, 0.5) * 1000, 3),
        "p99_ms": round(percentile(timings, 0.99) * 1000, 3),
        "median_ms": round(median(timings) * 1000, 3),
    }


async def run(
    documents: int, queries: int, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Load ``documents`` twice (indexed, plain), run ``queries`` range queries on each."""
    rnd = random.Random(7)
    docs = [_doc(i, rnd) for i in range(documents)]
    lows = [rnd.randint(0, 1_000_000) for _ in range(queries)]
    with tempfile.TemporaryDirectory(prefix="bw-bench-query-") as tmp:
        engine = Engine(
            "bench",
            HybridClock("bench"),
            {"indexed": CollectionConfig("indexed", indexes=("n",))},
        )
        store = SqliteStore(Path(tmp) / "store.db", engine)
        await store.open()
        try:
            progress(f"loading {documents:,} documents into 'indexed'")
            await _load(store, "indexed", docs)
            progress(f"loading {documents:,} documents into 'plain'")
            await _load(store, "plain", docs)
            progress("querying")
            indexed = await _time_store(store, "indexed", lows)
            plain = await _time_store(store, "plain", lows[: max(1, queries // 10)])
        finally:
            await store.aclose()
        progress("raw sqlite3")
        raw = await asyncio.to_thread(_time_raw, Path(tmp) / "raw.db", docs, lows)
    result: dict[str, Any] = {
        "benchmark": "query",
        "documents": documents,
        "query": "where n >= X order by n limit 50",
        "machine": machine(),
        "indexed": _summary(indexed),
        "unindexed": _summary(plain),
        "raw_sqlite_indexed": _summary(raw),
    }
    result["indexed_over_raw"] = round(
        result["indexed"]["median_ms"] / max(result["raw_sqlite_indexed"]["median_ms"], 1e-6), 1
    )
    return result
