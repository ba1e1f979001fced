"""Scoped sync: the collections a device follows (docs/sdk.md#scoped-sync).

A device that follows some collections pulls and subscribes with the protocol's ``collections``
filter, so the node sends it nothing else. The feed's cursor belongs to the filter it was
pulled with (docs/protocol.md#cursors), so the scope is stored beside the cursor and a database
opened with another scope resyncs from the empty cursor.
"""

from __future__ import annotations

from collections.abc import Iterable

from breakwater.core.mutation import check_collection

MAX_COLLECTIONS = 64
"""The protocol's limit on collections per pull or realtime subscription."""

Scope = tuple[str, ...] | None
"""Sorted collection names, or ``None`` for every collection."""


def sync_scope(collections: Iterable[str] | None) -> Scope:
    """The validated scope: names checked (``ValidationError``), sorted and without repeats.

    ``None`` follows every collection. An empty list, a bare string or more than
    :data:`MAX_COLLECTIONS` names is a ``ValueError``: each is a mistake, not a scope.
    """
    if collections is None:
        return None
    if isinstance(collections, str):
        raise ValueError("sync_collections takes a list of collection names, not a string")
    names = sorted({check_collection(name) for name in collections})
    if not names:
        raise ValueError("sync_collections is empty; pass None to sync every collection")
    if len(names) > MAX_COLLECTIONS:
        raise ValueError(f"sync_collections names {len(names)} collections; at most 64")
    return tuple(names)


def scope_param(scope: Scope) -> str | None:
    """The ``collections`` query parameter of a pull or an SSE stream (``None``: leave it out)."""
    return None if scope is None else ",".join(scope)
