"""One group commit of the PostgreSQL writer: two round trips, whatever the batch size.

A group is first tried optimistically: :meth:`PgWriteBatch.prefetch` reads what the group needs
(the feed head, mutation ids, documents, seqs) in one statement without any lock, the engine runs
on that snapshot, and :meth:`PgWriteBatch.write_claimed` writes everything in one autocommit
statement that first takes the feed head's row lock. If the head moved since the read (another
group committed), it writes only if none of the documents and mutation ids the group read
changed, numbering its rows after the other group's; so the lock is held for that one statement
and its commit, never across a round trip to the node, and two workers or nodes writing
different documents do not redo each other's groups (docs/adr/0059-claim-the-feed-head-last.md).
When a row it read did change, nothing is written and the writer redoes the group under the
lock, in a transaction, with :meth:`flush` (docs/adr/0005-postgres-gap-free-feed.md). Both write
statements take array parameters through ``unnest``, one data-modifying CTE per table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, NamedTuple, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from breakwater.core import codec, document
from breakwater.core.engine import Change, MutationResult
from breakwater.core.mutation import Mutation
from breakwater.storage._rows import DOC_COLUMNS, doc_from_row
from breakwater.storage._staging import StagedBatch

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Outcome: TypeAlias = "list[MutationResult] | BaseException"
"""What one caller of a group commit gets: its results, or the error that failed it."""


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


def _write_sql(claim: str, guard: str, lsn_shift: str, seq_shift: str, returning: str) -> str:
    """The statement writing a group: every table in one statement, each insert under ``guard``,
    its lsns and seqs moved by ``lsn_shift`` and ``seq_shift``, answering ``returning``."""
    return (
        f"WITH {claim}changes_written AS (INSERT INTO changes (lsn, origin, seq, collection,"
        f" doc_id, mutation_id, hlc, op, at_ms) SELECT l + {lsn_shift}, o, s + {seq_shift}, c,"
        " d, m, h, p, $9::bigint FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[],"
        f" $5::text[], $6::text[], $7::text[], $8::text[]) AS t(l, o, s, c, d, m, h, p)"
        f" WHERE {guard}),"
        " docs_written AS (INSERT INTO docs (collection, id, data, state, version, hlc, origin,"
        f" seq, lsn, deleted) SELECT c, i, a, st, v, h, o, s + {seq_shift}, l + {lsn_shift}, x"
        " FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[],"
        " $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::boolean[])"
        f" AS t(c, i, a, st, v, h, o, s, l, x) WHERE {guard}"
        " ON CONFLICT (collection, id) DO UPDATE SET data = excluded.data, state = excluded.state,"
        " version = excluded.version, hlc = excluded.hlc, origin = excluded.origin,"
        " seq = excluded.seq, lsn = excluded.lsn, deleted = excluded.deleted),"
        f" origins_written AS (INSERT INTO origins (origin, seq, hlc) SELECT o, s + {seq_shift},"
        f" h FROM unnest($20::text[], $21::bigint[], $22::text[]) AS t(o, s, h) WHERE {guard}"
        " ON CONFLICT (origin) DO UPDATE"
        " SET seq = excluded.seq, hlc = GREATEST(origins.hlc, excluded.hlc)),"
        " conflicts_written AS (INSERT INTO conflicts (collection, doc_id, mutation_id, origin,"
        f" seq, fields, winner_hlc, at_ms) SELECT c, d, m, o, s + {seq_shift}, f, w, $9::bigint"
        " FROM unnest($23::text[], $24::text[], $25::text[], $26::text[], $27::bigint[],"
        f" $28::text[], $29::text[]) AS t(c, d, m, o, s, f, w) WHERE {guard})"
        f" UPDATE feed_head SET lsn = $30 + {lsn_shift} WHERE {guard} RETURNING {returning}"
    )


WRITE = _write_sql("", "true", "0", "0", "lsn")
"""The write of a group whose caller holds the feed head's lock in a transaction."""

WRITE_CLAIMED = _write_sql(
    "claim AS (SELECT claim_head($31, $32, $33, $34, $35, $36, $37) AS shift), ",
    "(SELECT shift IS NOT NULL FROM claim)",
    "(SELECT shift[1] FROM claim)",
    "(SELECT shift[2] FROM claim)",
    "(SELECT shift FROM claim)",
)
"""The write of a group read without the lock. ``claim_head`` (schema migration 4) takes the
lock, then checks with a fresh snapshot whether any document or mutation id the group read
(``$35``-``$37``) has changed since the read's head ``$31``. If none has, the group is written
(and, being one autocommit statement, committed) with its positions moved past whatever other
groups committed in between: its own origin's seqs (``$32``, read as ``$33``) and the feed's
lsns are numbered after theirs, so both still grow in commit order (I3). If one has (or the
group may not be renumbered, ``$34``), nothing is written. Every other read in this statement
uses its snapshot from before the lock; the inserts' conflict checks and the head's update see
the newest rows regardless."""


class Shift(NamedTuple):
    """How far a group's positions moved between its read and its write."""

    lsn: int
    seq: int


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

    async def write_claimed(self, conn: Connection, origin: str) -> Shift | None:
        """Lock the head, check, write and commit, all in one statement (see
        :data:`WRITE_CLAIMED`); how far the group's positions moved, or ``None`` when a row it
        read had changed (then nothing was written)."""
        if not self.batch.changes:
            return Shift(0, 0)  # duplicates and refusals only: the snapshot answered them
        # A counter's folded state holds its increment's seq (``document.settle``): such a
        # group is written only at the positions it was merged at.
        renumber = all(change.op != "increment" for change in self.batch.changes)
        keys = list(self.known_docs)
        shift = await conn.fetchval(
            WRITE_CLAIMED,
            *self._write_args(),
            self.head_lsn,
            origin,
            self.known_seqs.get(origin, 0),
            renumber,
            [c for c, _ in keys],
            [i for _, i in keys],
            list(self.known_mutations),
        )
        return None if shift is None else Shift(shift[0], shift[1])

    def renumber(self, outcomes: list[Outcome], origin: str, shift: Shift) -> list[Outcome]:
        """``outcomes`` with this group's seqs of ``origin`` moved by ``shift.seq``, as
        :meth:`write_claimed` wrote them; the staged head of ``origin`` moved to match."""
        read_seq = self.known_seqs.get(origin, 0)
        self.batch.seqs[origin] += shift.seq

        def moved(result: MutationResult) -> MutationResult:
            if result.origin != origin or result.seq is None or result.seq <= read_seq:
                return result  # refused, or a duplicate of a change committed before the read
            doc = result.doc
            if doc is not None:
                doc = replace(doc, seq=doc.seq + shift.seq)
            return replace(result, seq=result.seq + shift.seq, doc=doc)

        return [
            outcome if isinstance(outcome, BaseException) else [moved(r) for r in outcome]
            for outcome in outcomes
        ]

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
