"""A node restored from a backup: a device that saw later changes resyncs (cursor_unknown),
offers back the document the node lost (tests/client/test_restore_offers.py), ends with exactly
the node's documents, and its pending write reaches the node once.

Run on both stores, backed up and put back as docs/operations.md says. Before ADR 0018 putting
the copy back was the whole procedure (:func:`mark_restored` did not exist): the restored node
handed out the lost positions again and the device silently kept ``lost`` and missed ``new``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from breakwater.config import Config
from breakwater.ops.restore import start_new_incarnation
from breakwater.server.app import create_app
from tests.client.test_resync import device
from tests.services import POSTGRES_URL
from tests.storage.backends import drop_schema, postgres_url


@dataclass
class Backup:
    """A node's store, its documented backup and the way the copy is put back."""

    url: str
    take: Callable[[], None]
    put_back: Callable[[], None]


def sqlite_backup(data: Path, copy: Path) -> Backup:
    """``sqlite3 breakwater.db ".backup …"``; back: the copy replaces the file, WAL removed."""
    live = data / "breakwater.db"

    def take() -> None:
        with sqlite3.connect(live) as source, sqlite3.connect(copy) as target:
            source.backup(target)  # what the sqlite3 shell's .backup does

    def put_back() -> None:
        for suffix in ("", "-wal", "-shm"):
            live.with_name(live.name + suffix).unlink(missing_ok=True)
        shutil.copy2(copy, live)

    return Backup(f"sqlite:///{live}", take, put_back)


def postgres_backup(url: str, schema: str, copy: Path) -> Backup:
    """``pg_dump --format=custom --schema=…``; back: ``pg_restore --clean``."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("the PostgreSQL procedure needs pg_dump and pg_restore")

    def take() -> None:
        dump = ["pg_dump", "--format=custom", f"--schema={schema}", f"--file={copy}"]
        subprocess.run([*dump, POSTGRES_URL], check=True, timeout=60)

    def put_back() -> None:
        restore = ["pg_restore", "--clean", "--if-exists", f"--dbname={POSTGRES_URL}", str(copy)]
        subprocess.run(restore, check=True, timeout=60)

    return Backup(url, take, put_back)


@pytest.fixture(params=["sqlite", "postgres"])
async def backup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backup]:
    """Each store, with its documented backup and restore."""
    if request.param == "sqlite":
        yield sqlite_backup(tmp_path / "node", tmp_path / "backup.db")
        return
    url, schema = postgres_url()
    yield postgres_backup(url, schema, tmp_path / "backup.dump")
    await drop_schema(schema)


async def mark_restored(url: str) -> None:
    """The last step of the restore procedure (``breakwater restore``)."""
    await start_new_incarnation(url, "local")


async def test_a_device_ahead_of_a_restored_node_resyncs_and_keeps_its_pending_write(
    tmp_path: Path, backup: Backup, make_config: Callable[..., Config]
) -> None:
    """Backup, more writes synced by the phone, restore: the phone writes back what the node
    lost, gets what the restored node wrote since, and its pending write is pushed once."""
    config = make_config(data=tmp_path / "node", store=backup.url)
    async with serving(config) as node:
        assert (await node.put("/v1/collections/todos/docs/a", json={"v": 1})).status_code == 201
        await asyncio.to_thread(backup.take)
        assert (await node.put("/v1/collections/todos/docs/lost", json={"v": 2})).is_success
        async with device(tmp_path / "phone.db", node) as phone:
            async with asyncio.timeout(20):
                await phone.wait_synced()
            assert {d.id for d in await phone.collection("todos").query()} == {"a", "lost"}
    await asyncio.to_thread(backup.put_back)
    await mark_restored(backup.url)

    async with serving(config) as restored:
        assert (await restored.put("/v1/collections/todos/docs/new", json={"v": 3})).is_success
        reopened = device(tmp_path / "phone.db", restored)
        await reopened.open()
        try:
            todos = reopened.collection("todos")
            await todos.set("mine", {"v": 4})  # pending when the resync starts
            async with asyncio.timeout(20):
                await reopened.wait_synced()
            docs = {d.id: d.data for d in await todos.query()}
        finally:
            await reopened.aclose()
        pulled = (await restored.get("/v1/sync/pull", params={"limit": 100})).json()["changes"]
    assert docs == {"a": {"v": 1}, "new": {"v": 3}, "mine": {"v": 4}, "lost": {"v": 2}}
    assert sorted(change["id"] for change in pulled) == ["a", "lost", "mine", "new"]


@contextlib.asynccontextmanager
async def serving(config: Config) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process node that stops (closing its store) when the block ends."""
    app = create_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as node,
    ):
        node.app = app  # type: ignore[attr-defined]
        yield node
