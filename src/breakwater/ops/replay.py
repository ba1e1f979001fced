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

from breakwater.core import codec, document
from breakwater.ops.archive import ArchivedChange
from breakwater.storage._sqlite_batch import INSERT_CHANGES, LAST_LSN, UPSERT_DOCS, UPSERT_ORIGINS

_CHUNK = 10_000


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


def replay_sqlite(
    path: Path, changes: Sequence[ArchivedChange], report: Callable[[int], None]
) -> None:
    """Append ``changes`` to the SQLite store at ``path`` in chunks of one transaction each."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        lsn = conn.execute(LAST_LSN).fetchone()[0]
        for start in range(0, len(changes), _CHUNK):
            chunk = changes[start : start + _CHUNK]
            conn.execute("BEGIN IMMEDIATE")
            try:
                feed, docs = [], []
                heads: dict[str, tuple[int, str]] = {}
                for change in chunk:
                    lsn += 1
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
                conn.executemany(INSERT_CHANGES, feed)
                conn.executemany(UPSERT_DOCS, docs)
                conn.executemany(UPSERT_ORIGINS, [(o, s, h) for o, (s, h) in heads.items()])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            report(start + len(chunk))
