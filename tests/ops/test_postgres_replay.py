"""A point-in-time restore onto PostgreSQL: the backup (``pg_dump`` from an exported snapshot)
put back and the archive replayed up to T give the store as it was at T, feed and documents, and
the feed's head row and origins continue from there."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from breakwater.core.mutation import Mutation
from breakwater.ops.archive import Archiver
from breakwater.ops.backup import AUTH_FILE, KEYS_FILE, NodeFiles, take_backup
from breakwater.ops.objects import FolderObjects
from breakwater.ops.restore import restore_backup, start_new_incarnation
from breakwater.storage.base import Store
from tests.storage.backends import build_store, drop_schema, engine, postgres_url


async def write(store: Store, mutation_id: str, doc_id: str, value: int) -> None:
    [result] = await store.apply([Mutation(mutation_id, "notes", doc_id, "set", {"v": value})])
    assert result.status == "applied"


async def test_a_postgres_store_restored_to_t_is_the_store_at_t(tmp_path: Path) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("backing up a PostgreSQL store needs pg_dump and pg_restore")
    url, schema = postgres_url()
    node = NodeFiles(url, tmp_path / AUTH_FILE, tmp_path / KEYS_FILE)
    backups, archive = FolderObjects(tmp_path / "backups"), FolderObjects(tmp_path / "archive")
    store = build_store(url, engine())
    await store.open()
    try:
        origin = store.origin
        await write(store, "m1", "d1", 1)
        manifest = await take_backup(node, backups, "b", None, lambda line: None)
        assert manifest.head == {origin: 1}
        archiver = Archiver(store, archive, None)
        await write(store, "m2", "d2", 2)
        await write(store, "m3", "d3", 3)
        await archiver.step()
        at_t = {doc: await store.get("notes", doc) for doc in ("d1", "d2", "d3")}
        await asyncio.sleep(0.01)
        moment = time.time_ns() // 1_000_000
        await asyncio.sleep(0.01)
        await write(store, "m4", "d2", 4)
        await archiver.step()
    finally:
        await store.aclose()

    restored = await asyncio.to_thread(
        restore_backup, node, backups, None, None, archive, moment, lambda line: None
    )
    assert (restored.replayed, restored.exact) == (2, True)
    new_origin = await start_new_incarnation(url, "r1")
    again = build_store(url, engine())
    await again.open()
    try:
        page = await again.pull({}, None, 100)
        assert [(e.change.origin, e.change.seq, e.change.mutation_id) for e in page.entries] == [
            (origin, 1, "m1"),
            (origin, 2, "m2"),
            (origin, 3, "m3"),
        ]
        for doc, before in at_t.items():
            assert await again.get("notes", doc) == before, doc
        await write(again, "m5", "d5", 5)
        assert await again.head() == {origin: 3, new_origin: 1}
    finally:
        await again.aclose()
        await drop_schema(schema)
