"""Turning stored rows into core objects, the same way for every SQL backend."""

from __future__ import annotations

from typing import Any

from breakwater.core import codec, cursor, document
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Change, StoredDoc
from breakwater.core.query import Query, encode_page_token
from breakwater.storage.base import FeedEntry, FeedPage, QueryPage

DOC_COLUMNS = "collection, id, state, data, version, hlc, origin, seq"


def doc_from_row(row: Any) -> StoredDoc:
    """A stored document from a row of :data:`DOC_COLUMNS` (a tuple or an asyncpg record)."""
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


def feed_entry(
    change: Change, data_json: str | None, version: str, state_json: str | None
) -> FeedEntry:
    """A feed entry; the CRDT state is unpacked only when it was read (``include_state``)."""
    data = None if data_json is None else codec.loads(data_json)
    state = None if state_json is None else document.unpack(codec.loads(state_json), data)
    return FeedEntry(change=change, data=data, version=version, state=state)


def feed_page(
    vector: VersionVector, entries: list[FeedEntry], has_more: bool, head: VersionVector
) -> FeedPage:
    """The page of ``entries`` read after ``vector``, with the cursor that follows it."""
    advanced = cursor.advance(vector, ((e.change.origin, e.change.seq) for e in entries))
    if not has_more:
        # Everything up to the snapshot's head was considered: the reader is caught up.
        advanced = cursor.merge(advanced, head)
    return FeedPage(entries, advanced, has_more, head)


def query_page(query: Query, docs: list[StoredDoc]) -> QueryPage:
    """One page of ``docs`` read with a limit of ``query.limit + 1``: the extra one only says
    that another page follows, and the page token points after the last one kept."""
    if len(docs) <= query.limit:
        return QueryPage(docs, None)
    docs = docs[: query.limit]
    last = docs[-1]
    value = last.data.get(query.order) if query.order and last.data else None
    return QueryPage(docs, encode_page_token(value, last.doc_id))
