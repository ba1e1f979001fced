"""Property: whatever rows one region's store loses or has rolled back behind its back, one
anti-entropy round against a healthy peer gives it the peer's data again, and a second round
finds nothing to repair (store level, both regions' stores in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.core.mutation import Mutation
from breakwater.replication.anti_entropy import read_bucket, read_digest, run_round
from breakwater.replication.wire import Bucket, Digest
from breakwater.storage.base import Store
from breakwater.storage.hooks import NO_HOOKS
from tests.storage.backends import build_store, engine, sqlite_url

DAY_MS = 86_400_000
IDS = [f"d{i}" for i in range(8)]


class StoreSource:
    """A peer's endpoints answered from its store directly."""

    def __init__(self, store: Store, region: str) -> None:
        self.store = store
        self.region = region

    async def digest(self, buckets: int) -> Digest:
        return await read_digest(self.store, self.region, buckets)

    async def bucket(self, collection: str, bucket: int, buckets: int) -> Bucket:
        return await read_bucket(self.store, self.region, collection, bucket, buckets)


async def _replicate(source: Store, target: Store) -> None:
    vector: dict[str, int] = {}
    while True:
        page = await source.pull(vector, None, 5, include_state=True)
        await target.apply_replicated(page.entries)
        vector = page.vector
        if not page.has_more:
            return


async def _data(store: Store) -> dict[str, Any]:
    docs = {}
    for doc_id in IDS:
        doc = await store.get("todos", doc_id)
        docs[doc_id] = None if doc is None or doc.deleted else doc.data
    return docs


writes = st.lists(
    st.tuples(st.sampled_from(IDS), st.sampled_from(["set", "patch", "delete"]), st.integers(0, 9)),
    min_size=1,
    max_size=20,
)
damage = st.lists(
    st.tuples(st.sampled_from(IDS), st.sampled_from(["lose", "roll_back"])), max_size=8
)


async def _scenario(
    root: Path,
    first: list[tuple[str, str, int]],
    second: list[tuple[str, str, int]],
    harm: list[tuple[str, str]],
) -> None:
    a = build_store(sqlite_url(root / "a"), engine(node="a-n", region="a"), NO_HOOKS, None)
    b = build_store(sqlite_url(root / "b"), engine(node="b-n", region="b"), NO_HOOKS, None)
    await a.open()
    await b.open()
    try:
        for round_, batch in enumerate((first, second)):
            mutations = [
                Mutation(
                    f"m{round_}-{i}", "todos", doc_id, op, None if op == "delete" else {"v": v}
                )
                for i, (doc_id, op, v) in enumerate(batch)
            ]
            await a.apply(mutations)
            await _replicate(a, b)
            if round_ == 0:
                with contextlib.closing(sqlite3.connect(b.path)) as conn:  # type: ignore[attr-defined]
                    old = {
                        row[0]: row[1:]
                        for row in conn.execute(
                            "SELECT id, data, state, version, hlc, origin, seq, deleted FROM docs"
                        )
                    }
        with contextlib.closing(sqlite3.connect(b.path)) as conn, conn:  # type: ignore[attr-defined]
            for doc_id, kind in harm:
                if kind == "lose":
                    conn.execute("DELETE FROM docs WHERE id = ?", (doc_id,))
                elif doc_id in old:
                    conn.execute(
                        "UPDATE docs SET data = ?, state = ?, version = ?, hlc = ?, origin = ?,"
                        " seq = ?, deleted = ? WHERE id = ?",
                        (*old[doc_id], doc_id),
                    )
        healthy = await _data(a)
        await run_round("a", StoreSource(a, "a"), b, buckets=4, purge_cutoff_ms=0)
        assert await _data(b) == healthy
        again = await run_round("a", StoreSource(a, "a"), b, buckets=4, purge_cutoff_ms=0)
        assert again.repairs == 0
    finally:
        await a.aclose()
        await b.aclose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writes, writes, damage)
def test_one_round_repairs_any_lost_or_rolled_back_rows(
    first: list[tuple[str, str, int]],
    second: list[tuple[str, str, int]],
    harm: list[tuple[str, str]],
) -> None:
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(_scenario(Path(root), first, second, harm))
