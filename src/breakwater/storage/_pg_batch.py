"""One group commit of the PostgreSQL writer: two round trips, whatever the batch size.

A group is first tried optimistically: :meth:`PgWriteBatch.prefetch` reads what the group needs
(the feed head, mutation ids, documents, seqs) in one statement without any lock, the engine runs
on that snapshot, and :meth:`PgWriteBatch.write_if_fresh` writes everything in one autocommit
statement that first takes the feed head's row lock and writes only if the head is still the one
the read saw. Every group commit of every node moves the head, so an unchanged head proves that
nothing was committed in between and the snapshot was current: the statement, its commit
included, is one round trip. When the head moved (another node committed), nothing is written
and the writer redoes the group under the lock, in a transaction, with :meth:`flush` (see
docs/adr/0005-postgres-gap-free-feed.md). Both write statements take array parameters through
``unnest``, one data-modifying CTE per table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from breakwater.core import codec, document
from breakwater.core.engine import Change
from breakwater.core.mutation import Mutation
from breakwater.storage._rows import DOC_COLUMNS, doc_from_row
from breakwater.storage._staging import StagedBatch

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


READ = (
    # One statement, one snapshot: the head, every origin's seq, which mutation ids are known,
    # the documents touched. Mutation ids and documents are one index probe per key, whatever
    # the planner's statistics say: ``OFFSET 0`` keeps each LATERAL subquery a parameterized
    # probe. Without it the planner flattens the subquery into a join, and while a table is
    # young (tens of thousands of rows) prefers a hash join over the whole table: 2.4 ms for
    # 100 keys on 20,000 feed entries, against 0.25 ms for the probes (measured in session 7).
    "SELECT 'h', NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,"
    " NULL::text, lsn FROM feed_head"
    " UNION ALL SELECT 'o', NULL, NULL, NULL, NULL, NULL, NULL, origin, seq FROM origins"
    " UNION ALL SELECT 'm', NULL, k.m, NULL, NULL, NULL, NULL, c.origin, c.seq"
    " FROM unnest($1::text[]) AS k(m) CROSS JOIN LATERAL"
    " (SELECT origin, seq FROM changes WHERE mutation_id = k.m OFFSET 0) AS c"
    " UNION ALL SELECT 'd', d.* FROM unnest($2::text[], $3::text[]) AS k(c, i) CROSS JOIN LATERAL"
    f" (SELECT {DOC_COLUMNS} FROM docs WHERE collection = k.c AND id = k.i OFFSET 0) AS d"
)


def _write_sql(guard: str, lock: str) -> str:
    """The statement writing a group: every table in one statement, each insert under ``guard``."""
    return (
        f"WITH {lock}changes_written AS (INSERT INTO changes (lsn, origin, seq, collection,"
        " doc_id, mutation_id, hlc, op, at_ms) SELECT l, o, s, c, d, m, h, p, $9::bigint FROM"
        " unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],"
        f" $7::text[], $8::text[]) AS t(l, o, s, c, d, m, h, p) WHERE {guard}),"
        " docs_written AS (INSERT INTO docs (collection, id, data, state, version, hlc, origin,"
        " seq, lsn, deleted) SELECT * FROM unnest($10::text[], $11::text[], $12::text[],"
        " $13::text[], $14::text[], $15::text[], $16::text[], $17::bigint[], $18::bigint[],"
        f" $19::boolean[]) AS t WHERE {guard}"
        " ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data, state = excluded.state,"
        " version = excluded.version, hlc = excluded.hlc, origin = excluded.origin,"
        " seq = excluded.seq, lsn = excluded.lsn, deleted = excluded.deleted),"
        " origins_written AS (INSERT INTO origins (origin, seq, hlc) SELECT * FROM"
        f" unnest($20::text[], $21::bigint[], $22::text[]) AS t WHERE {guard}"
        " ON CONFLICT (origin) DO UPDATE"
        " SET seq = excluded.seq, hlc = GREATEST(origins.hlc, excluded.hlc)),"
        " conflicts_written AS (INSERT INTO conflicts (collection, doc_id, mutation_id, origin,"
        " seq, fields, winner_hlc, at_ms) SELECT c, d, m, o, s, f, w, $9::bigint FROM"
        " unnest($23::text[], $24::text[], $25::text[], $26::text[], $27::bigint[], $28::text[],"
        f" $29::text[]) AS t(c, d, m, o, s, f, w) WHERE {guard})"
        f" UPDATE feed_head SET lsn = $30 WHERE {guard} RETURNING lsn"
    )


WRITE = _write_sql("true", "")
"""The write of a group whose caller holds the feed head's lock in a transaction."""

WRITE_IF_FRESH = _write_sql(
    "(SELECT lsn = $31 FROM head)", "head AS (SELECT lsn FROM feed_head FOR UPDATE), "
)
"""The write of a group read without the lock: it takes the lock, and writes (and, being one
autocommit statement, commits) only if the head is still ``$31``, the head the read saw. After
waiting for the lock, ``FOR UPDATE`` sees the head's newest version, so a group committed in
between shows as a moved head, and every insert and the head's update are skipped."""


class PgWriteBatch(StagedBatch):
    """The engine's ``WriteTarget`` for one group commit, read and written in bulk."""

    head_lsn = 0

    async def prefetch(self, conn: Connection, mutations: Iterable[Mutation | Change]) -> None:
        """Read the feed head, the origins' seqs, which mutation ids are known, and the
        documents the mutations touch, in one snapshot (with or without the head's lock)."""
        mutations = list(mutations)
        ids = sorted({m.mutation_id for m in mutations})
        keys = sorted({(m.collection, m.doc_id) for m in mutations})
        self.known_mutations.update(dict.fromkeys(ids))
        self.known_docs.update(dict.fromkeys(keys))
        rows = await conn.fetch(READ, ids, [c for c, _ in keys], [i for _, i in keys])
        for row in rows:
            kind = row[0]
            if kind == "d":
                self.known_docs[(row[1], row[2])] = doc_from_row(row[1:])
            elif kind == "m":
                self.known_mutations[row[2]] = (row[7], row[8])
            elif kind == "o":
                self.known_seqs[row[7]] = row[8]
            else:
                self.head_lsn = row[8]

    async def flush(self, conn: Connection) -> None:
        """Write every kept effect after the feed head; the caller holds the lock and commits."""
        if self.batch.changes:
            await conn.execute(WRITE, *self._write_args())

    async def write_if_fresh(self, conn: Connection) -> bool:
        """Lock the head, write and commit, all in one statement, if the head is still the one
        :meth:`prefetch` read; whether it was (when not, nothing was written)."""
        if not self.batch.changes:
            return True  # duplicates and refusals only: the snapshot answered them
        written = await conn.fetchval(WRITE_IF_FRESH, *self._write_args(), self.head_lsn)
        return written is not None

    def _write_args(self) -> list[Any]:
        """The parameters ``$1`` to ``$30`` of the write statements."""
        batch = self.batch
        changes = batch.changes
        first = self.head_lsn + 1
        lsns: dict[tuple[str, str], int] = {}
        for lsn, change in enumerate(changes, start=first):
            lsns[(change.collection, change.doc_id)] = lsn
        docs = list(batch.docs.items())
        newest_hlc = self.newest_hlc()
        seqs = list(batch.seqs.items())
        conflicts = batch.conflicts
        return [
            list(range(first, first + len(changes))),
            [c.origin for c in changes],
            [c.seq for c in changes],
            [c.collection for c in changes],
            [c.doc_id for c in changes],
            [c.mutation_id for c in changes],
            [c.hlc for c in changes],
            [c.op for c in changes],
            self.now_ms,
            [key[0] for key, _ in docs],
            [key[1] for key, _ in docs],
            [None if data is None else data.decode() for _, (_, data) in docs],
            [codec.dumps(document.pack(doc.state)).decode() for _, (doc, _) in docs],
            [doc.version for _, (doc, _) in docs],
            [doc.hlc for _, (doc, _) in docs],
            [doc.origin for _, (doc, _) in docs],
            [doc.seq for _, (doc, _) in docs],
            [lsns[key] for key, _ in docs],
            [doc.deleted for _, (doc, _) in docs],
            [origin for origin, _ in seqs],
            [seq for _, seq in seqs],
            [newest_hlc[origin] for origin, _ in seqs],
            [c.change.collection for c in conflicts],
            [c.change.doc_id for c in conflicts],
            [c.change.mutation_id for c in conflicts],
            [c.change.origin for c in conflicts],
            [c.change.seq for c in conflicts],
            [codec.dumps(c.fields).decode() for c in conflicts],
            [c.winner_hlc for c in conflicts],
            first + len(changes) - 1,
        ]
