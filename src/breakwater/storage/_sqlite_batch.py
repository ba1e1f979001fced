"""One group commit of the SQLite writer, staged in memory and written with a few statements.

The engine runs against :class:`WriteBatch` (its ``WriteTarget``) without touching SQL per
mutation: mutation ids and documents of the whole batch are read up front with one query each,
every effect is staged in memory, and :meth:`WriteBatch.flush` writes them with ``executemany``.
Few statements per batch means few trips through SQLite and few hand-overs of the GIL between
the writer thread and the event loop, which is where a per-mutation design spends its time.

The staging itself (request layers, the ``WriteTarget``) is :mod:`breakwater.storage._staging`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from breakwater.core import codec, document
from breakwater.core.engine import Change, StoredDoc
from breakwater.core.mutation import Mutation
from breakwater.storage._bodies import pack
from breakwater.storage._rows import DOC_COLUMNS, doc_from_row
from breakwater.storage._staging import StagedBatch

_CHUNK = 400  # stays under SQLite's default limit of bound parameters

# The statements of a group commit, shared with the benchmark that runs them alone
# (:mod:`breakwater.bench.store_rows`). The ``{marks}`` are one ``?`` per key of a chunk.
KNOWN_MUTATIONS = "SELECT mutation_id, origin, seq FROM changes WHERE mutation_id IN ({marks})"
KNOWN_DOCS = f"SELECT {DOC_COLUMNS} FROM docs WHERE collection = ? AND id IN ({{marks}})"
LAST_LSN = "SELECT COALESCE(MAX(lsn), 0) FROM changes"
INSERT_CHANGES = (
    "INSERT INTO changes (lsn, origin, seq, collection, doc_id, mutation_id, hlc, op, at_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_DOCS = (
    "INSERT INTO docs (collection, id, data, state, version, hlc, origin, seq, lsn, deleted)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data,"
    " state = excluded.state, version = excluded.version, hlc = excluded.hlc,"
    " origin = excluded.origin, seq = excluded.seq, lsn = excluded.lsn,"
    " deleted = excluded.deleted"
)
UPSERT_ORIGINS = (
    "INSERT INTO origins (origin, seq, hlc) VALUES (?, ?, ?)"
    " ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq,"
    " hlc = MAX(origins.hlc, excluded.hlc)"
)


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class WriteBatch(StagedBatch):
    """The engine's ``WriteTarget`` for one group commit on the writer's connection."""

    def __init__(self, conn: sqlite3.Connection, now_ms: int) -> None:
        super().__init__(now_ms)
        self.conn = conn

    # reading what the batch needs, in a few queries -----------------------------------------

    def prefetch(self, mutations: Iterable[Mutation | Change]) -> None:
        """Load which of the mutation ids were applied, and the documents the others touch."""
        mutations = list(mutations)
        ids = sorted({m.mutation_id for m in mutations} - self.known_mutations.keys())
        for mutation_id in ids:
            self.known_mutations[mutation_id] = None
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            for mutation_id, origin, seq in self.conn.execute(
                KNOWN_MUTATIONS.format(marks=marks), chunk
            ):
                self.known_mutations[mutation_id] = (origin, seq)
        by_collection: dict[str, set[str]] = {}
        for m in mutations:
            if self.known_mutations[m.mutation_id] is not None:
                continue  # a duplicate: its document is not needed
            if (m.collection, m.doc_id) not in self.known_docs:
                by_collection.setdefault(m.collection, set()).add(m.doc_id)
        for collection, doc_ids in by_collection.items():
            wanted = sorted(doc_ids)
            for doc_id in wanted:
                self.known_docs[(collection, doc_id)] = None
            for chunk in _chunks(wanted):
                marks = ", ".join("?" * len(chunk))
                for row in self.conn.execute(KNOWN_DOCS.format(marks=marks), [collection, *chunk]):
                    self.known_docs[(row[0], row[1])] = doc_from_row(row)

    def _fetch_doc(self, collection: str, doc_id: str) -> StoredDoc | None:
        row = self.conn.execute(
            f"SELECT {DOC_COLUMNS} FROM docs WHERE collection = ? AND id = ?",
            (collection, doc_id),
        ).fetchone()
        return None if row is None else doc_from_row(row)

    def _fetch_mutation(self, mutation_id: str) -> tuple[str, int] | None:
        row = self.conn.execute(
            "SELECT origin, seq FROM changes WHERE mutation_id = ?", (mutation_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def _fetch_seq(self, origin: str) -> int:
        row = self.conn.execute("SELECT seq FROM origins WHERE origin = ?", (origin,)).fetchone()
        return 0 if row is None else int(row[0])

    # writing ----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every kept effect; the caller commits."""
        batch = self.batch
        if not batch.changes:
            return
        # The writer holds SQLite's write lock, so the next local positions are ours to number.
        last = self.conn.execute(LAST_LSN).fetchone()[0]
        lsns: dict[tuple[str, str], int] = {}
        rows = []
        for lsn, change in enumerate(batch.changes, start=last + 1):
            lsns[(change.collection, change.doc_id)] = lsn
            rows.append(
                (
                    lsn,
                    change.origin,
                    change.seq,
                    change.collection,
                    change.doc_id,
                    change.mutation_id,
                    change.hlc,
                    change.op,
                    self.now_ms,
                )
            )
        self.conn.executemany(INSERT_CHANGES, rows)
        self.conn.executemany(
            UPSERT_DOCS,
            [
                (
                    doc.collection,
                    doc.doc_id,
                    None if data_json is None else pack(data_json),
                    codec.dumps(document.pack(doc.state)).decode(),
                    doc.version,
                    doc.hlc,
                    doc.origin,
                    doc.seq,
                    lsns[key],
                    int(doc.deleted),
                )
                for key, (doc, data_json) in batch.docs.items()
            ],
        )
        newest_hlc = self.newest_hlc()
        self.conn.executemany(
            UPSERT_ORIGINS,
            [(origin, seq, newest_hlc[origin]) for origin, seq in batch.seqs.items()],
        )
        if batch.conflicts:
            self.conn.executemany(
                "INSERT INTO conflicts (collection, doc_id, mutation_id, origin, seq, fields,"
                " winner_hlc, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        c.change.collection,
                        c.change.doc_id,
                        c.change.mutation_id,
                        c.change.origin,
                        c.change.seq,
                        codec.dumps(c.fields).decode(),
                        c.winner_hlc,
                        self.now_ms,
                    )
                    for c in batch.conflicts
                ],
            )
