"""One group commit of the SQLite writer, staged in memory and written with a few statements.

The engine runs against :class:`WriteBatch` (its ``WriteTarget``) without touching SQL per
mutation: mutation ids and documents of the whole batch are read up front with one query each,
every effect is staged in memory, and :meth:`WriteBatch.flush` writes them with ``executemany``.
Few statements per batch means few trips through SQLite and few hand-overs of the GIL between
the writer thread and the event loop, which is where a per-mutation design spends its time.

Each caller's request is staged in a layer of its own, so an unexpected error while applying one
request discards that request alone (:meth:`discard_request`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from breakwater.core import codec, document
from breakwater.core.engine import Change, Conflict, StoredDoc
from breakwater.core.mutation import Mutation

DOC_COLUMNS = "collection, id, state, data, version, hlc, origin, seq"
_CHUNK = 400  # stays under SQLite's default limit of bound parameters


def doc_from_row(row: Sequence[Any]) -> StoredDoc:
    """A stored document from a row of :data:`DOC_COLUMNS`."""
    data = None if row[3] is None else codec.loads(row[3])
    return StoredDoc(
        collection=row[0],
        doc_id=row[1],
        state=document.unpack(codec.loads(row[2]), data),
        data=data,
        version=row[4],
        hlc=row[5],
        origin=row[6],
        seq=row[7],
    )


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class _Layer:
    """The staged effects of one request (or, merged, of the whole batch)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], tuple[StoredDoc, bytes | None]] = {}
        self.changes: list[Change] = []
        self.applied: dict[str, tuple[str, int]] = {}
        self.conflicts: list[Conflict] = []
        self.seqs: dict[str, int] = {}

    def merge(self, other: _Layer) -> None:
        self.docs.update(other.docs)
        self.changes += other.changes
        self.applied.update(other.applied)
        self.conflicts += other.conflicts
        self.seqs.update(other.seqs)


class WriteBatch:
    """The engine's ``WriteTarget`` for one group commit on the writer's connection."""

    def __init__(self, conn: sqlite3.Connection, now_ms: int) -> None:
        self.conn = conn
        self.now_ms = now_ms
        self._known_docs: dict[tuple[str, str], StoredDoc | None] = {}
        self._known_mutations: dict[str, tuple[str, int] | None] = {}
        self._batch = _Layer()
        self._request = _Layer()

    # reading what the batch needs, in a few queries -----------------------------------------

    def prefetch(self, mutations: Iterable[Mutation]) -> None:
        """Load which of the mutation ids were applied, and the documents the others touch."""
        mutations = list(mutations)
        ids = sorted({m.mutation_id for m in mutations} - self._known_mutations.keys())
        for mutation_id in ids:
            self._known_mutations[mutation_id] = None
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            for mutation_id, origin, seq in self.conn.execute(
                f"SELECT mutation_id, origin, seq FROM changes WHERE mutation_id IN ({marks})",
                chunk,
            ):
                self._known_mutations[mutation_id] = (origin, seq)
        by_collection: dict[str, set[str]] = {}
        for m in mutations:
            if self._known_mutations[m.mutation_id] is not None:
                continue  # a duplicate: its document is not needed
            if (m.collection, m.doc_id) not in self._known_docs:
                by_collection.setdefault(m.collection, set()).add(m.doc_id)
        for collection, doc_ids in by_collection.items():
            wanted = sorted(doc_ids)
            for doc_id in wanted:
                self._known_docs[(collection, doc_id)] = None
            for chunk in _chunks(wanted):
                marks = ", ".join("?" * len(chunk))
                for row in self.conn.execute(
                    f"SELECT {DOC_COLUMNS} FROM docs WHERE collection = ? AND id IN ({marks})",
                    [collection, *chunk],
                ):
                    self._known_docs[(row[0], row[1])] = doc_from_row(row)

    # WriteTarget ----------------------------------------------------------------------------

    def load(self, collection: str, doc_id: str) -> StoredDoc | None:
        key = (collection, doc_id)
        for layer in (self._request, self._batch):
            if key in layer.docs:
                return layer.docs[key][0]
        if key not in self._known_docs:
            row = self.conn.execute(
                f"SELECT {DOC_COLUMNS} FROM docs WHERE collection = ? AND id = ?", key
            ).fetchone()
            self._known_docs[key] = None if row is None else doc_from_row(row)
        return self._known_docs[key]

    def find_mutation(self, mutation_id: str) -> tuple[str, int] | None:
        for layer in (self._request, self._batch):
            if mutation_id in layer.applied:
                return layer.applied[mutation_id]
        if mutation_id not in self._known_mutations:
            row = self.conn.execute(
                "SELECT origin, seq FROM changes WHERE mutation_id = ?", (mutation_id,)
            ).fetchone()
            self._known_mutations[mutation_id] = None if row is None else (row[0], row[1])
        return self._known_mutations[mutation_id]

    def next_seq(self, origin: str) -> int:
        current = self._request.seqs.get(origin) or self._batch.seqs.get(origin)
        if current is None:
            row = self.conn.execute(
                "SELECT seq FROM origins WHERE origin = ?", (origin,)
            ).fetchone()
            current = 0 if row is None else int(row[0])
        self._request.seqs[origin] = current + 1
        return current + 1

    def save(self, doc: StoredDoc, change: Change, data_json: bytes | None) -> None:
        self._request.docs[(doc.collection, doc.doc_id)] = (doc, data_json)
        self._request.changes.append(change)
        self._request.applied[change.mutation_id] = (change.origin, change.seq)

    def record_conflict(self, conflict: Conflict) -> None:
        self._request.conflicts.append(conflict)

    # request layers -------------------------------------------------------------------------

    def keep_request(self) -> None:
        """Make the current request's effects part of the batch."""
        self._batch.merge(self._request)
        self._request = _Layer()

    def discard_request(self) -> None:
        """Forget the current request's effects (it failed)."""
        self._request = _Layer()

    @property
    def touched(self) -> dict[str, int]:
        """The new head seq of every origin this batch wrote."""
        return dict(self._batch.seqs)

    # writing ----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every kept effect; the caller commits."""
        batch = self._batch
        if not batch.changes:
            return
        # The writer holds SQLite's write lock, so the next local positions are ours to number.
        last = self.conn.execute("SELECT COALESCE(MAX(lsn), 0) FROM changes").fetchone()[0]
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
        self.conn.executemany(
            "INSERT INTO changes (lsn, origin, seq, collection, doc_id, mutation_id, hlc, op,"
            " at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.conn.executemany(
            "INSERT INTO docs (collection, id, data, state, version, hlc, origin, seq, lsn,"
            " deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data,"
            " state = excluded.state, version = excluded.version, hlc = excluded.hlc,"
            " origin = excluded.origin, seq = excluded.seq, lsn = excluded.lsn,"
            " deleted = excluded.deleted",
            [
                (
                    doc.collection,
                    doc.doc_id,
                    None if data_json is None else data_json.decode(),
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
        newest_hlc: dict[str, str] = {}
        for change in batch.changes:
            newest_hlc[change.origin] = max(newest_hlc.get(change.origin, ""), change.hlc)
        self.conn.executemany(
            "INSERT INTO origins (origin, seq, hlc) VALUES (?, ?, ?)"
            " ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq,"
            " hlc = MAX(origins.hlc, excluded.hlc)",
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
