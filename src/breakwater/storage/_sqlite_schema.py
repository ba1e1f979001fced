"""Versioned schema migrations of the SQLite store (``PRAGMA user_version`` is the version).

A step is SQL, or a function of the connection where the step depends on what the file holds.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from breakwater.core import incarnation
from breakwater.core.errors import ConfigError, StoreIncompatible


def _index_bodies(conn: sqlite3.Connection) -> None:
    """Drop the configured indexes over the raw ``data`` column: a compressed body is no JSON
    to ``json_extract``. The store's ``open`` creates them again over the body's text."""
    rows = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'docs'"
        " AND sql LIKE '%json_extract(data,%'"
    ).fetchall()
    for (name,) in rows:
        conn.execute(f'DROP INDEX "{name}"')


MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 1: documents (visible data + packed CRDT clocks), the change feed (which also answers
    # "was this mutation id applied?" for the retention horizon), per-origin heads, conflicts.
    """
    CREATE TABLE docs (
        collection TEXT NOT NULL,
        id TEXT NOT NULL,
        data TEXT,
        state TEXT NOT NULL,
        version TEXT NOT NULL,
        hlc TEXT NOT NULL,
        origin TEXT NOT NULL,
        seq INTEGER NOT NULL,
        lsn INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        UNIQUE (collection, id)
    );
    CREATE TABLE changes (
        lsn INTEGER PRIMARY KEY,
        origin TEXT NOT NULL,
        seq INTEGER NOT NULL,
        collection TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        mutation_id TEXT NOT NULL,
        hlc TEXT NOT NULL,
        op TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        UNIQUE (origin, seq)
    );
    CREATE UNIQUE INDEX changes_mutation ON changes (mutation_id);
    CREATE TABLE origins (
        origin TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        low_water INTEGER NOT NULL DEFAULT 0,
        hlc TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        collection TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        mutation_id TEXT NOT NULL,
        origin TEXT NOT NULL,
        seq INTEGER NOT NULL,
        fields TEXT NOT NULL,
        winner_hlc TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX conflicts_doc ON conflicts (collection, doc_id);
    """,
    # 2: the store's own settings; ``incarnation`` qualifies the origin it writes under (ADR 0018).
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    # 3: replication (ADR 0022). A mutation applied in two regions has two positions, and each
    # region's feed keeps both, so a mutation id no longer names one feed entry. The region's
    # state, per-peer cursors, leases and the stable vector live in ``replication``.
    """
    DROP INDEX changes_mutation;
    CREATE INDEX changes_mutation ON changes (mutation_id);
    CREATE TABLE replication (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: bodies may be stored compressed (ADR 0050); rows of text stay as they are, and the
    # configured indexes read the body's text (``_bodies.BODY_SQL``).
    _index_bodies,
)

LATEST = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`LATEST`, one transaction per step; return the old version."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > LATEST:
        raise StoreIncompatible(
            f"the database is at schema version {current}, newer than this Breakwater "
            f"({LATEST}); upgrade Breakwater or restore a backup"
        )
    for version in range(current + 1, LATEST + 1):
        step = MIGRATIONS[version - 1]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if callable(step):
                step(conn)
            else:
                # executescript would commit on its own; run statement by statement instead.
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return int(current)


def require_existing(path: str | Path) -> None:
    """Refuse to mark as restored a file that holds no store: a wrong path would otherwise
    become a new, empty store that a node then serves."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise ConfigError(f"no Breakwater store at {path} to mark restored ({exc})") from exc
    if version == 0:
        raise ConfigError(f"{path} holds no Breakwater store to mark restored")


def incarnate(conn: sqlite3.Connection, restored: bool) -> str:
    """The store's incarnation: kept across opens, new for a new store and after a restore."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'incarnation'").fetchone()
        value = incarnation.new() if row is None or restored else str(row[0])
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('incarnation', ?)", (value,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return value
