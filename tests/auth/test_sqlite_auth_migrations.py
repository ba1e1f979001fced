"""The SQLite auth store's schema versions: a file from before versioning is migrated in place."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from breakwater.auth.sqlite_store import MIGRATIONS, SqliteAuthStore
from breakwater.core.errors import StoreIncompatible

PROCESSES = 6


def test_a_file_from_before_versioning_gains_the_account_lifecycle(tmp_path: Path) -> None:
    """Version 0 with the first schema and an account: opened, the account is there, enabled
    and unverified, and the file is at the newest version."""
    path = tmp_path / "auth.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute(
            "INSERT INTO accounts (uid, email, password_hash, anonymous, roles, created_ms)"
            " VALUES ('u1', 'old@example.com', 'h', 0, '[]', 1)"
        )
    store = SqliteAuthStore(path)
    store.open()
    try:
        account = store.account("u1")
        assert account is not None and account.email == "old@example.com"
        assert (account.disabled, account.email_verified) == (False, False)
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_a_file_from_a_newer_breakwater_is_refused(tmp_path: Path) -> None:
    """An unknown version is StoreIncompatible, never a guess."""
    path = tmp_path / "auth.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreIncompatible, match="newer than this Breakwater"):
        SqliteAuthStore(path).open()


def _open_at_once(path: str, barrier: Any) -> None:
    barrier.wait()
    store = SqliteAuthStore(Path(path))
    store.open()
    store.close()


def test_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    """``serve --workers`` opens one new file from several processes: every one opens it, and
    the file ends at the newest version (a step run twice used to fail and set it back)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    path = tmp_path / "auth.db"
    processes = [
        context.Process(target=_open_at_once, args=(str(path), barrier)) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
