"""Switching a SQLite file to WAL when several processes open it at once."""

from __future__ import annotations

import sqlite3
import time

ATTEMPTS = 100
PAUSE_S = 0.05


def enable_wal(conn: sqlite3.Connection) -> None:
    """Put ``conn``'s file in WAL mode. Processes opening one new file at once (``serve
    --workers``) race for the switch, and SQLite can answer the loser "database is locked" at
    once, without its busy handler: retry for a few seconds before giving up."""
    for attempt in range(ATTEMPTS):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == ATTEMPTS - 1:
                raise
            time.sleep(PAUSE_S)
