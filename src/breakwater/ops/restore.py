"""Restores: put a backup back, replay the archive up to a moment, and give the store a new
incarnation (ADR 0018, docs/adr/0029-backups-and-point-in-time-restore.md).

A store put back from a backup has forgotten the positions it handed out after the backup. Its
new incarnation makes every later change land under a new origin, so no position is handed out
twice, and a device whose cursor saw the lost changes gets ``410 cursor_unknown`` and resyncs.
A store cannot tell a copy put back from the live file it was taken from, so this step is part
of every restore (docs/operations.md#restore); the nodes must be stopped while it runs.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from breakwater.core.engine import Engine
from breakwater.core.errors import ConfigError
from breakwater.core.hlc import HybridClock
from breakwater.ops import backup
from breakwater.ops.archive import read_archive, replay_plan
from breakwater.ops.objects import ObjectStore, write_private
from breakwater.ops.replay import replay_postgres, replay_sqlite
from breakwater.ops.sealing import unseal
from breakwater.storage import open_store, sqlite_path

Report = Callable[[str], None]


async def start_new_incarnation(store_url: str, region: str) -> str:
    """Open the store at ``store_url`` as restored; return the origin its writes get now."""
    engine = Engine(region, HybridClock(f"restore-{secrets.token_hex(3)}"))
    store = open_store(store_url, engine)
    await store.open(restored=True)
    try:
        return store.origin
    finally:
        await store.aclose()


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore brought back."""

    backup: str
    replayed: int
    last_change_ms: int
    exact: bool


def choose_backup(source: ObjectStore, until_ms: int | None, key: bytes | None) -> str:
    """The newest backup at ``source`` taken at or before ``until_ms`` (any, when ``None``)."""
    names = sorted(
        {n.split("/", 1)[0] for n in source.names() if n.endswith(f"/{backup.MANIFEST}")},
        reverse=True,
    )
    for name in names:
        stored = source.get(f"{name}/{backup.MANIFEST}")
        manifest = backup.Manifest.loads(unseal(f"{name}/{backup.MANIFEST}", stored, key))
        if until_ms is None or manifest.taken_ms <= until_ms:
            return name
    raise ConfigError(f"{source.url} holds no backup taken before the time asked for")


def _put_back_sqlite(node: backup.NodeFiles, folder: Path) -> Path:
    store = sqlite_path(node.store_url)
    store.parent.mkdir(parents=True, exist_ok=True)
    places = {backup.STORE_FILE: store, backup.AUTH_FILE: node.auth_db}
    for file, place in places.items():
        for stale in (
            place,
            place.with_name(place.name + "-wal"),
            place.with_name(place.name + "-shm"),
        ):
            stale.unlink(missing_ok=True)
        if (folder / file).exists():
            shutil.copyfile(folder / file, place)
    return store


def _put_back_postgres(node: backup.NodeFiles, folder: Path) -> None:
    from breakwater.storage.postgres import PostgresSettings

    if shutil.which("pg_restore") is None:
        raise ConfigError("restoring a PostgreSQL store needs pg_restore (postgresql-client)")
    dsn = PostgresSettings.from_url(node.store_url).dsn
    done = subprocess.run(
        ["pg_restore", "--clean", "--if-exists", f"--dbname={dsn}", str(folder / backup.DUMP_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ConfigError(f"pg_restore failed: {done.stderr.strip()}")


def restore_backup(
    node: backup.NodeFiles,
    source: ObjectStore,
    name: str | None,
    key: bytes | None,
    archive: ObjectStore | None,
    until_ms: int | None,
    report: Report,
) -> Restored:
    """Put back backup ``name`` (the newest before ``until_ms`` if ``None``) and replay the
    archive up to ``until_ms``; the caller then starts the new incarnation."""
    postgres = node.postgres
    chosen = name or choose_backup(source, until_ms, key)
    with tempfile.TemporaryDirectory(prefix="bw-restore-") as work:
        folder = Path(work)
        manifest = backup.fetch_backup(source, chosen, key, folder, report)
        if until_ms is not None and manifest.taken_ms > until_ms:
            raise ConfigError(f"backup {chosen} was taken after the time asked for")
        plan = None
        if archive is not None:
            report("reading the archive")
            plan = replay_plan(read_archive(archive, key), manifest.head, until_ms)
        if manifest.kind == "postgres":
            if not postgres:
                raise ConfigError(f"backup {chosen} is of a PostgreSQL store; pass --store")
            _put_back_postgres(node, folder)
        else:
            if postgres:
                raise ConfigError(f"backup {chosen} is of a SQLite store; pass --data")
            store = _put_back_sqlite(node, folder)
        keys = folder / backup.KEYS_FILE
        if keys.exists():
            node.keys.parent.mkdir(parents=True, exist_ok=True)
            node.keys.unlink(missing_ok=True)
            write_private(node.keys, keys.read_bytes())
        report(f"put back backup {chosen} (taken {backup.iso_time(manifest.taken_ms)})")
    if plan is None or not plan.changes:
        return Restored(chosen, 0, manifest.taken_ms, plan is None or plan.exact)
    total = len(plan.changes)
    report(f"replaying {total:,} archived changes")

    def replayed(done: int) -> None:
        report(f"replayed {done:,}/{total:,} changes")

    if postgres:
        from breakwater.storage.postgres import PostgresSettings

        settings = PostgresSettings.from_url(node.store_url)
        asyncio.run(replay_postgres(settings.dsn, settings.schema, plan.changes, replayed))
    else:
        replay_sqlite(store, plan.changes, replayed)
    return Restored(chosen, total, plan.changes[-1].at_ms, plan.exact)
