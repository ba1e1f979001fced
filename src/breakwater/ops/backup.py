"""``breakwater backup``: an online, consistent copy of everything a node needs.

What a node needs: the documents and their feed (with the store's ``meta``, its incarnation),
the accounts, refresh tokens and API keys, and the token signing keys. With SQLite each database
is copied with SQLite's online backup API in one step, which reads one snapshot while writers go on
(WAL); with PostgreSQL, ``pg_dump`` dumps the store's schema from a snapshot exported by a
``REPEATABLE READ`` transaction, in which the backup also reads the feed's head. So the backup is
the store exactly as it was at one commit, and its manifest names that commit's head, from which an
archive replay continues (ops/archive.py, docs/adr/0029-backups-and-point-in-time-restore.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breakwater.core import codec
from breakwater.core.cursor import VersionVector
from breakwater.core.errors import ConfigError
from breakwater.ops import sealing
from breakwater.ops.objects import ObjectStore
from breakwater.storage import POSTGRES_SCHEMES, sqlite_path

FORMAT = 1
MANIFEST = "manifest.json"
STORE_FILE = "breakwater.db"
AUTH_FILE = "auth.db"
KEYS_FILE = "auth-keys.json"
DUMP_FILE = "breakwater.dump"

Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup holds: its files' checksums and the store's head at the backup's point."""

    kind: str
    taken_ms: int
    head: VersionVector
    files: dict[str, str]
    encrypted: bool

    def dumps(self) -> bytes:
        """The manifest as stored (sealed like the files)."""
        return codec.dumps(
            {
                "format": FORMAT,
                "kind": self.kind,
                "taken_ms": self.taken_ms,
                "taken_at": iso_time(self.taken_ms),
                "head": self.head,
                "files": self.files,
                "encrypted": self.encrypted,
            }
        )

    @classmethod
    def loads(cls, body: bytes) -> Manifest:
        """A manifest read back; an unknown format is refused."""
        raw: dict[str, Any] = codec.loads(body)
        if raw.get("format") != FORMAT:
            raise sealing.SealBroken(f"backup format {raw.get('format')!r} is not {FORMAT}")
        return cls(raw["kind"], raw["taken_ms"], raw["head"], raw["files"], raw["encrypted"])


def iso_time(ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC time, as ``--to`` takes it."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_name(now: float | None = None) -> str:
    """A backup's default name: its UTC time, which sorts."""
    moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, datetime.UTC)
    return moment.strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True, slots=True)
class NodeFiles:
    """Where a node keeps what a backup copies (from its configuration, by the CLI)."""

    store_url: str
    auth_db: Path
    """The SQLite accounts database (unused with a PostgreSQL store, which holds them)."""
    keys: Path
    """The token signing keys file."""

    @property
    def postgres(self) -> bool:
        """Whether the store (and with it the accounts) is in PostgreSQL."""
        return self.store_url.split(":", 1)[0] in POSTGRES_SCHEMES


def copy_database(source: Path, target: Path) -> VersionVector | None:
    """Copy one database with the online backup API in one step (one read snapshot: writers
    go on; a stepped copy would restart whenever a writer commits) and return the feed's head
    when it is the store."""
    if not source.exists():
        raise ConfigError(f"no database at {source} to back up")
    with (
        contextlib.closing(
            sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        ) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.execute("PRAGMA busy_timeout = 30000")
        src.backup(dst)
        tables = {row[0] for row in dst.execute("SELECT name FROM sqlite_master")}
        if "origins" not in tables:
            return None
        return dict(dst.execute("SELECT origin, seq FROM origins").fetchall())


def _store_files_sqlite(node: NodeFiles, work: Path, report: Report) -> VersionVector:
    store = sqlite_path(node.store_url)
    report(f"copying {store} (online backup)")
    head = copy_database(store, work / STORE_FILE) or {}
    auth = node.auth_db
    if auth.exists():
        report(f"copying {auth} (online backup)")
        copy_database(auth, work / AUTH_FILE)
    return head


async def _store_files_postgres(node: NodeFiles, work: Path, report: Report) -> VersionVector:
    """``pg_dump`` of the schema from a snapshot this transaction exports and holds."""
    import asyncpg

    from breakwater.storage.postgres import PostgresSettings

    if shutil.which("pg_dump") is None:
        raise ConfigError(
            "backing up a PostgreSQL store needs pg_dump (the postgresql-client package)"
        )
    settings = PostgresSettings.from_url(node.store_url)
    conn = await asyncpg.connect(settings.dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            rows = await conn.fetch(f'SELECT origin, seq FROM "{settings.schema}".origins')
            report(f"dumping schema {settings.schema} (pg_dump, snapshot {snapshot})")
            dump = await asyncio.create_subprocess_exec(
                "pg_dump",
                "--format=custom",
                f"--schema={settings.schema}",
                f"--snapshot={snapshot}",
                f"--file={work / DUMP_FILE}",
                settings.dsn,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, errors = await dump.communicate()
            if dump.returncode != 0:
                raise ConfigError(f"pg_dump failed: {errors.decode().strip()}")
    finally:
        await conn.close()
    return {row[0]: row[1] for row in rows}


def _seal_all(
    node: NodeFiles, work: Path, target: ObjectStore, name: str, key: bytes | None, report: Report
) -> dict[str, str]:
    """Add the signing keys, then seal and store every file; their checksums as stored."""
    if node.keys.exists():
        shutil.copyfile(node.keys, work / KEYS_FILE)
    files: dict[str, str] = {}
    for path in sorted(work.iterdir()):
        stored = sealing.seal(f"{name}/{path.name}", path.read_bytes(), key)
        target.put(f"{name}/{path.name}", stored)
        files[path.name] = sealing.digest(stored)
        report(f"stored {name}/{path.name} ({len(stored):,} bytes)")
    return files


async def take_backup(
    node: NodeFiles, target: ObjectStore, name: str, key: bytes | None, report: Report
) -> Manifest:
    """Copy the node's store, accounts and signing keys to ``target`` under ``name``."""
    postgres = node.postgres
    with tempfile.TemporaryDirectory(prefix="bw-backup-") as folder:
        work = Path(folder)
        taken_ms = time.time_ns() // 1_000_000
        if postgres:
            head = await _store_files_postgres(node, work, report)
        else:
            head = await asyncio.to_thread(_store_files_sqlite, node, work, report)
        files = await asyncio.to_thread(_seal_all, node, work, target, name, key, report)
    manifest = Manifest(
        "postgres" if postgres else "sqlite", taken_ms, head, files, key is not None
    )
    target.put(f"{name}/{MANIFEST}", sealing.seal(f"{name}/{MANIFEST}", manifest.dumps(), key))
    return manifest


def fetch_backup(
    source: ObjectStore, name: str, key: bytes | None, into: Path, report: Report
) -> Manifest:
    """Read backup ``name`` into the folder ``into``, verifying every checksum first."""
    manifest = Manifest.loads(
        sealing.unseal(f"{name}/{MANIFEST}", source.get(f"{name}/{MANIFEST}"), key)
    )
    for file, expected in manifest.files.items():
        stored = source.get(f"{name}/{file}")
        if sealing.digest(stored) != expected:
            raise sealing.SealBroken(f"{name}/{file}: checksum differs from the manifest")
        body = sealing.unseal(f"{name}/{file}", stored, key)
        path = into / file
        path.write_bytes(body)
        if file == KEYS_FILE:
            path.chmod(0o600)
        report(f"verified {name}/{file} ({len(body):,} bytes)")
    return manifest
