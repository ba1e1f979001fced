"""Replaying archived changes onto a store put back from a backup, as raw rows.

The replay writes what the store held at each archived change: the change's feed row under its
own position and commit time, and the document's state, exactly as the commit wrote them. It does
not go through the engine: the changes are not new writes, and they must keep their positions
and stamps so that devices and peers that saw them before see the same feed again. The store's
new incarnation (``breakwater restore``) follows, so nothing replayed is handed out again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg

from breakwater.core import codec, document
from breakwater.ops.archive import ArchivedChange
from breakwater.storage import _bodies
from breakwater.storage._sqlite_batch import INSERT_CHANGES, LAST_LSN, UPSERT_DOCS, UPSERT_ORIGINS

_CHUNK = 10_000
_PG_CHANGES = (
    "INSERT INTO {s}.changes (lsn, origin, seq, collection, doc_id, mutation_id, hlc, op, at_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
_PG_DOCS = (
    "INSERT INTO {s}.docs (collection, id, data, state, version, hlc, origin, seq, lsn, deleted)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (collection, id) DO UPDATE"
    " SET data = excluded.data, state = excluded.state, version = excluded.version,"
    " hlc = excluded.hlc, origin = excluded.origin, seq = excluded.seq, lsn = excluded.lsn,"
    " deleted = excluded.deleted"
)
_PG_ORIGINS = (
    "INSERT INTO {s}.origins (origin, seq, hlc) VALUES ($1, $2, $3) ON CONFLICT (origin)"
    " DO UPDATE SET seq = excluded.seq, hlc = GREATEST({s}.origins.hlc, excluded.hlc)"
)


def _doc_row(change: ArchivedChange, lsn: int) -> tuple[object, ...]:
    """The ``docs`` row a change left (its state is known: ``current``)."""
    assert change.state is not None
    state = change.state
    newest = document.newest_write(state)
    data = document.visible(state, newest)
    return (
        change.collection,
        change.doc_id,
        None if data is None else codec.dumps(data).decode(),
        codec.dumps(document.pack(state)).decode(),
        document.version(state),
        newest,
        change.origin,
        change.seq,
        lsn,
        int(data is None),
    )


def _rows(
    chunk: Sequence[ArchivedChange], last_lsn: int
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[str, int, str]]]:
    """The feed, document and origin rows of ``chunk``, numbered after ``last_lsn``."""
    feed: list[tuple[object, ...]] = []
    docs: list[tuple[object, ...]] = []
    heads: dict[str, tuple[int, str]] = {}
    for lsn, change in enumerate(chunk, start=last_lsn + 1):
        feed.append(
            (
                lsn,
                change.origin,
                change.seq,
                change.collection,
                change.doc_id,
                change.mutation_id,
                change.hlc,
                change.op,
                change.at_ms,
            )
        )
        if change.current:
            docs.append(_doc_row(change, lsn))
        seq, hlc = heads.get(change.origin, (0, ""))
        heads[change.origin] = (max(seq, change.seq), max(hlc, change.hlc))
    return feed, docs, [(o, s, h) for o, (s, h) in heads.items()]


async def replay_postgres(
    dsn: str, schema: str, changes: Sequence[ArchivedChange], report: Callable[[int], None]
) -> None:
    """Append ``changes`` to the PostgreSQL store in ``schema``, one transaction per chunk,
    holding the feed's head row as a committing node does (ADR 0005)."""
    quoted = '"' + schema.replace('"', '""') + '"'
    conn = await asyncpg.connect(dsn)
    try:
        for start in range(0, len(changes), _CHUNK):
            async with conn.transaction():
                lsn = await conn.fetchval(f"SELECT lsn FROM {quoted}.feed_head FOR UPDATE")
                feed, docs, heads = _rows(changes[start : start + _CHUNK], lsn)
                await conn.executemany(_PG_CHANGES.format(s=quoted), feed)
                rows = [(*row[:-1], bool(row[-1])) for row in docs]
                await conn.executemany(_PG_DOCS.format(s=quoted), rows)
                await conn.executemany(_PG_ORIGINS.format(s=quoted), heads)
                await conn.execute(f"UPDATE {quoted}.feed_head SET lsn = $1", lsn + len(feed))
            report(start + len(feed))
    finally:
        await conn.close()


def _stored_body(row: tuple[object, ...]) -> tuple[object, ...]:
    """A ``docs`` row with its body as the SQLite writer stores it (ADR 0050)."""
    data = row[2]
    return row if not isinstance(data, str) else (*row[:2], _bodies.pack(data.encode()), *row[3:])


def replay_sqlite(
    path: Path, changes: Sequence[ArchivedChange], report: Callable[[int], None]
) -> None:
    """Append ``changes`` to the SQLite store at ``path`` in chunks of one transaction each."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        _bodies.register(conn)  # the configured indexes read bodies through it
        lsn = conn.execute(LAST_LSN).fetchone()[0]
        for start in range(0, len(changes), _CHUNK):
            conn.execute("BEGIN IMMEDIATE")
            try:
                feed, docs, heads = _rows(changes[start : start + _CHUNK], lsn)
                conn.executemany(INSERT_CHANGES, feed)
                conn.executemany(UPSERT_DOCS, [_stored_body(row) for row in docs])
                conn.executemany(UPSERT_ORIGINS, heads)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            lsn += len(feed)
            report(start + len(feed))
