"""Query pages as one caller may see them: the read rule decides inside the scan, before any
document can shape the page (docs/adr/0016-queries-under-read-rules.md)."""

from __future__ import annotations

from dataclasses import replace

from breakwater.auth.identity import Identity
from breakwater.core import codec
from breakwater.core.query import Query
from breakwater.server.node import Node
from breakwater.server.wire import doc_json

EMPTY_PAGE = codec.dumps({"docs": [], "next": None})


async def query_page(node: Node, identity: Identity | None, query: Query) -> bytes:
    """The encoded page of ``query`` for the caller, exactly as if the documents it may not read
    did not exist (the collection already admitted for reading)."""
    view = node.policy.read_view(identity, query.collection)
    if view.nothing:
        return EMPTY_PAGE
    scoped = replace(query, filters=query.filters + view.filters)

    async def load() -> bytes:
        page = await node.store.query(scoped, view.visible)
        return codec.dumps({"docs": [doc_json(doc) for doc in page.docs], "next": page.next_token})

    # The page depends on the query and, when the rule is evaluated per row, on the caller's
    # rule context: both name the cached entry.
    return await node.cache.query(scoped, load, view.key)
