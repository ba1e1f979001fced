"""One group commit of the PostgreSQL writer: a few round trips, whatever the batch size.

The writer holds the feed head's row lock (see docs/adr/0005) when it calls :meth:`prefetch`,
so what it reads (mutation ids, documents, seqs) is what the previous group, of any node,
committed. :meth:`prefetch` is one statement and :meth:`flush` another (array parameters through
``unnest``, one data-modifying CTE per table), whatever the size of the group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from breakwater.core import codec, document
from breakwater.core.mutation import Mutation
from breakwater.storage._rows import DOC_COLUMNS, doc_from_row
from breakwater.storage._staging import StagedBatch

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


_READ = (
    # One statement, one snapshot taken after the feed head's lock was granted: the head, every
    # origin's seq, which mutation ids are known, the documents touched. Mutation ids and
    # documents are one index probe per key (LATERAL), whatever the planner's statistics say:
    # a young table without them would otherwise be scanned whole.
    "SELECT 'h', NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,"
    " NULL::text, lsn FROM feed_head"
    " UNION ALL SELECT 'o', NULL, NULL, NULL, NULL, NULL, NULL, origin, seq FROM origins"
    " UNION ALL SELECT 'm', NULL, k.m, NULL, NULL, NULL, NULL, c.origin, c.seq"
    " FROM unnest($1::text[]) AS k(m) CROSS JOIN LATERAL"
    " (SELECT origin, seq FROM changes WHERE mutation_id = k.m) AS c"
    " UNION ALL SELECT 'd', d.* FROM unnest($2::text[], $3::text[]) AS k(c, i) CROSS JOIN LATERAL"
    f" (SELECT {DOC_COLUMNS} FROM docs WHERE collection = k.c AND id = k.i) AS d"
)

_WRITE = (
    # One statement for every table, so that a group commit costs four round trips in all
    # (BEGIN and the lock, this read, this write, COMMIT), whatever its size.
    "WITH changes_written AS (INSERT INTO changes (lsn, origin, seq, collection, doc_id,"
    " mutation_id, hlc, op, at_ms) SELECT l, o, s, c, d, m, h, p, $9::bigint FROM"
    " unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],"
    " $7::text[], $8::text[]) AS t(l, o, s, c, d, m, h, p)),"
    " docs_written AS (INSERT INTO docs (collection, id, data, state, version, hlc, origin, seq,"
    " lsn, deleted) SELECT * FROM unnest($10::text[], $11::text[], $12::text[], $13::text[],"
    " $14::text[], $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::boolean[])"
    " ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data, state = excluded.state,"
    " version = excluded.version, hlc = excluded.hlc, origin = excluded.origin,"
    " seq = excluded.seq, lsn = excluded.lsn, deleted = excluded.deleted),"
    " origins_written AS (INSERT INTO origins (origin, seq, hlc) SELECT * FROM"
    " unnest($20::text[], $21::bigint[], $22::text[]) ON CONFLICT (origin) DO UPDATE"
    " SET seq = excluded.seq, hlc = GREATEST(origins.hlc, excluded.hlc)),"
    " conflicts_written AS (INSERT INTO conflicts (collection, doc_id, mutation_id, origin, seq,"
    " fields, winner_hlc, at_ms) SELECT c, d, m, o, s, f, w, $9::bigint FROM unnest($23::text[],"
    " $24::text[], $25::text[], $26::text[], $27::bigint[], $28::text[], $29::text[])"
    " AS t(c, d, m, o, s, f, w))"
    " UPDATE feed_head SET lsn = $30"
)


class PgWriteBatch(StagedBatch):
    """The engine's ``WriteTarget`` for one group commit, read and written in bulk."""

    head_lsn = 0

    async def prefetch(self, conn: Connection, mutations: Iterable[Mutation]) -> None:
        """Read the feed head, the origins' seqs, which mutation ids are known, and the
        documents the mutations touch (the caller holds the feed head's lock)."""
        mutations = list(mutations)
        ids = sorted({m.mutation_id for m in mutations})
        keys = sorted({(m.collection, m.doc_id) for m in mutations})
        self.known_mutations.update(dict.fromkeys(ids))
        self.known_docs.update(dict.fromkeys(keys))
        rows = await conn.fetch(_READ, ids, [c for c, _ in keys], [i for _, i in keys])
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
        """Write every kept effect after the feed head; the caller commits."""
        batch = self.batch
        if not batch.changes:
            return
        changes = batch.changes
        first = self.head_lsn + 1
        lsns: dict[tuple[str, str], int] = {}
        for lsn, change in enumerate(changes, start=first):
            lsns[(change.collection, change.doc_id)] = lsn
        docs = list(batch.docs.items())
        newest_hlc = self.newest_hlc()
        seqs = list(batch.seqs.items())
        conflicts = batch.conflicts
        await conn.execute(
            _WRITE,
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
        )
