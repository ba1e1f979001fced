"""Turning stored rows into core objects, the same way for every SQL backend."""

from __future__ import annotations

from typing import Any

from breakwater.core import codec, cursor, document
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Change, StoredDoc
from breakwater.core.query import Query, Visible, encode_page_token
from breakwater.storage._bodies import unpack
from breakwater.storage.base import DocSummary, FeedEntry, FeedPage, QueryPage, RecordedConflict

DOC_COLUMNS = "collection, id, state, data, version, hlc, origin, seq"
SUMMARY_COLUMNS = "collection, id, version, origin, seq, hlc, data IS NULL"
"""A summary's ``deleted`` is what reads serve (no data), as :attr:`StoredDoc.deleted` is."""


def doc_from_row(row: Any) -> StoredDoc:
    """A stored document from a row of :data:`DOC_COLUMNS` (a tuple or an asyncpg record)."""
    data = None if row[3] is None else codec.loads(unpack(row[3]))
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


def summary_from_row(row: Any) -> DocSummary:
    """A document's summary from a row of :data:`SUMMARY_COLUMNS`."""
    return DocSummary(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))


def conflict_of(row: Any) -> RecordedConflict:
    """A recorded conflict from ``collection, doc_id, mutation_id, origin, seq, fields,
    winner_hlc, at_ms`` (``fields`` stored as a JSON list)."""
    return RecordedConflict(
        row[0], row[1], row[2], row[3], row[4], codec.loads(row[5]), row[6], row[7]
    )


def feed_entry(
    change: Change,
    data_json: str | bytes | None,
    version: str,
    state_json: str | None,
    at_ms: int | None = None,
    current: bool | None = None,
) -> FeedEntry:
    """A feed entry; the CRDT state (with the commit time and whether this change left it) is
    unpacked only when it was read (``include_state``)."""
    data = None if data_json is None else codec.loads(unpack(data_json))
    state = None if state_json is None else document.unpack(codec.loads(state_json), data)
    return FeedEntry(
        change=change,
        data=data,
        version=version,
        state=state,
        at_ms=at_ms,
        current=True if current is None else bool(current),
    )


def feed_page(
    vector: VersionVector, entries: list[FeedEntry], has_more: bool, head: VersionVector
) -> FeedPage:
    """The page of ``entries`` read after ``vector``, with the cursor that follows it."""
    advanced = cursor.advance(vector, ((e.change.origin, e.change.seq) for e in entries))
    if not has_more:
        # Everything up to the snapshot's head was considered: the reader is caught up.
        advanced = cursor.merge(advanced, head)
    return FeedPage(entries, advanced, has_more, head)


class PageBuilder:
    """One query page from the rows a store reads in the query's order, with the read rule
    applied inside the scan.

    Rows come from a statement with no limit when ``visible`` is set (else with a limit of
    ``query.limit + 1``). Rows whose data ``visible`` refuses are skipped before they count: the
    page holds the first ``query.limit`` visible rows, a token exists only if one more visible
    row follows, and it names the last row kept. So hidden documents change nothing of the page
    (docs/adr/0016-queries-under-read-rules.md).
    """

    __slots__ = ("_docs", "_query", "_visible", "next_token")

    def __init__(self, query: Query, visible: Visible | None = None) -> None:
        self._query = query
        self._visible = visible
        self._docs: list[StoredDoc] = []
        self.next_token: str | None = None

    def add(self, row: Any) -> bool:
        """Take one row of :data:`DOC_COLUMNS`; False once the page is complete (stop reading)."""
        if self._visible is not None:
            data = None if row[3] is None else codec.loads(unpack(row[3]))
            if data is None or not self._visible(data):
                return True
        if len(self._docs) == self._query.limit:
            last = self._docs[-1]
            order = self._query.order
            value = last.data.get(order) if order and last.data else None
            self.next_token = encode_page_token(value, last.doc_id)
            return False
        self._docs.append(doc_from_row(row))
        return True

    def page(self) -> QueryPage:
        """The page read so far."""
        return QueryPage(self._docs, self.next_token)
