"""One group commit of the PostgreSQL writer: a few round trips, whatever the batch size.

The writer holds the feed head's row lock (see docs/adr/0005) when it calls :meth:`prefetch`,
so what it reads (mutation ids, documents, seqs) is what the previous group, of any node,
committed. :meth:`flush` writes the kept effects with one array (``unnest``) statement per table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from breakwater.core import codec, document
from breakwater.core.engine import StoredDoc
from breakwater.core.mutation import Mutation
from breakwater.storage._pg_query import DOC_COLUMNS
from breakwater.storage._staging import StagedBatch

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


def doc_from_row(row: asyncpg.Record) -> StoredDoc:
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


class PgWriteBatch(StagedBatch):
    """The engine's ``WriteTarget`` for one group commit, read and written in bulk."""

    async def prefetch(self, conn: Connection, mutations: Iterable[Mutation]) -> None:
        """Read the origins' seqs, which mutation ids are known, and the documents touched."""
        mutations = list(mutations)
        for origin, seq in await conn.fetch("SELECT origin, seq FROM origins"):
            self.known_seqs[origin] = seq
        ids = sorted({m.mutation_id for m in mutations})
        self.known_mutations.update(dict.fromkeys(ids))
        # One index probe per key (LATERAL), whatever the planner's statistics say: a young
        # table without them would otherwise be scanned whole.
        for mutation_id, origin, seq in await conn.fetch(
            "SELECT k.m, c.origin, c.seq FROM unnest($1::text[]) AS k(m) CROSS JOIN LATERAL"
            " (SELECT origin, seq FROM changes WHERE mutation_id = k.m) AS c",
            ids,
        ):
            self.known_mutations[mutation_id] = (origin, seq)
        keys = sorted({(m.collection, m.doc_id) for m in mutations})
        self.known_docs.update(dict.fromkeys(keys))
        rows = await conn.fetch(
            f"SELECT d.* FROM unnest($1::text[], $2::text[]) AS k(c, i) CROSS JOIN LATERAL"
            f" (SELECT {DOC_COLUMNS} FROM docs WHERE collection = k.c AND id = k.i) AS d",
            [c for c, _ in keys],
            [i for _, i in keys],
        )
        for row in rows:
            self.known_docs[(row[0], row[1])] = doc_from_row(row)

    async def flush(self, conn: Connection, head_lsn: int) -> None:
        """Write every kept effect after feed position ``head_lsn``; the caller commits."""
        batch = self.batch
        if not batch.changes:
            return
        lsns: dict[tuple[str, str], int] = {}
        for lsn, change in enumerate(batch.changes, start=head_lsn + 1):
            lsns[(change.collection, change.doc_id)] = lsn
        changes = batch.changes
        await conn.execute(
            "INSERT INTO changes (lsn, origin, seq, collection, doc_id, mutation_id, hlc, op,"
            " at_ms) SELECT l, o, s, c, d, m, h, p, $9::bigint FROM unnest($1::bigint[],"
            " $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],"
            " $8::text[]) AS t(l, o, s, c, d, m, h, p)",
            list(range(head_lsn + 1, head_lsn + 1 + len(changes))),
            [c.origin for c in changes],
            [c.seq for c in changes],
            [c.collection for c in changes],
            [c.doc_id for c in changes],
            [c.mutation_id for c in changes],
            [c.hlc for c in changes],
            [c.op for c in changes],
            self.now_ms,
        )
        docs = list(batch.docs.items())
        await conn.execute(
            "INSERT INTO docs (collection, id, data, state, version, hlc, origin, seq, lsn,"
            " deleted) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::boolean[])"
            " ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data,"
            " state = excluded.state, version = excluded.version, hlc = excluded.hlc,"
            " origin = excluded.origin, seq = excluded.seq, lsn = excluded.lsn,"
            " deleted = excluded.deleted",
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
        )
        newest_hlc = self.newest_hlc()
        seqs = list(batch.seqs.items())
        await conn.execute(
            "INSERT INTO origins (origin, seq, hlc) SELECT * FROM unnest($1::text[],"
            " $2::bigint[], $3::text[]) ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq,"
            " hlc = GREATEST(origins.hlc, excluded.hlc)",
            [origin for origin, _ in seqs],
            [seq for _, seq in seqs],
            [newest_hlc[origin] for origin, _ in seqs],
        )
        await conn.execute("UPDATE feed_head SET lsn = $1", head_lsn + len(changes))
        if batch.conflicts:
            await conn.executemany(
                "INSERT INTO conflicts (collection, doc_id, mutation_id, origin, seq, fields,"
                " winner_hlc, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
