"""The JSON shapes of documents, feed changes and push results (see docs/protocol.md)."""

from __future__ import annotations

from typing import Any

from breakwater.core.engine import MutationResult, StoredDoc
from breakwater.storage.base import FeedEntry


def etag(version: str) -> str:
    """The strong ETag of a document version."""
    return f'"{version}"'


def doc_json(doc: StoredDoc) -> dict[str, Any]:
    """A document envelope: metadata plus ``data`` (``null`` for a tombstone)."""
    return {
        "collection": doc.collection,
        "id": doc.doc_id,
        "version": doc.version,
        "hlc": doc.hlc,
        "origin": doc.origin,
        "seq": doc.seq,
        "deleted": doc.deleted,
        "data": doc.data,
    }


def change_json(entry: FeedEntry) -> dict[str, Any]:
    """One feed change with the document's current merged state."""
    change = entry.change
    body: dict[str, Any] = {
        "origin": change.origin,
        "seq": change.seq,
        "collection": change.collection,
        "id": change.doc_id,
        "op": change.op,
        "mutation_id": change.mutation_id,
        "hlc": change.hlc,
        "deleted": entry.data is None,
        "version": entry.version,
        "data": entry.data,
    }
    if entry.state is not None:
        body["state"] = entry.state
    return body


def result_json(result: MutationResult) -> dict[str, Any]:
    """One push result: ``applied``/``duplicate`` name ``(origin, seq)``; ``rejected`` a problem."""
    body: dict[str, Any] = {"mutation_id": result.mutation_id, "status": result.status}
    if result.status == "rejected":
        assert result.error is not None
        body["error"] = result.error.to_problem()
        return body
    body["origin"] = result.origin
    body["seq"] = result.seq
    if result.doc is not None:
        body["version"] = result.doc.version
        body["hlc"] = result.doc.hlc
        if result.conflict_fields:
            body["conflict"] = result.conflict_fields
    return body
