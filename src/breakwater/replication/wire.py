"""The replication pull's answer, as JSON: a page of feed entries with full document states.

A peer region is a very reliable client: it reads the same feed as devices do, but every entry
carries the document's whole CRDT state (so joining it is the whole merge), its original
``(origin, seq)``, mutation id and HLC. With the page come the responder's head vector, its region
name, current origin (which says which of its incarnations are retired, ADR 0037) and state, its
stable vector and the regions it replicates with, and how far it delivered its own changes to
each webhook subscription (so a region that takes its deliveries over when it is lost starts
there: docs/adr/0042-files-and-webhooks-across-regions.md). When the responder traces and
remembers the writes that made some of the page's changes, the page also carries ``traces``:
each write's ``traceparent`` and the positions it made (docs/adr/0041), so the puller's apply
and realtime deliveries join the device's trace. Absent otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from breakwater.core import cursor as cursor_mod
from breakwater.core import hlc
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Change
from breakwater.core.errors import ValidationError
from breakwater.core.incarnation import REGION_PATTERN, region_of
from breakwater.core.mutation import COLLECTION_PATTERN, ID_PATTERN, MUTATION_ID_PATTERN
from breakwater.core.topology import REGION_STATES
from breakwater.storage.base import DocSummary, FeedEntry, FeedPage

_OPS = frozenset({"set", "patch", "delete", "increment"})
_STATE_KEYS = frozenset({"f", "s", "x", "n"})
_HEX = re.compile(r"[0-9a-f]{32}", re.ASCII)
_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", re.ASCII)
Position = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ReplicaPage:
    """A page a peer answered, checked."""

    region: str
    state: str
    entries: list[FeedEntry]
    vector: VersionVector
    has_more: bool
    head: VersionVector
    stable: VersionVector
    regions: tuple[str, ...]
    origin: str | None = None
    """The responder's current origin (``None`` from a peer that predates ADR 0037)."""
    webhooks: dict[str, VersionVector] | None = None
    """Per webhook subscription, the responder's cursor over its own region's origins
    (``None``: not told, e.g. its webhook store was down)."""
    traces: dict[str, list[Position]] = field(default_factory=dict)
    """Positions of the page by the ``traceparent`` of the write that made them (tracing)."""
    accepts_held: bool = False
    """The responder records a pull's ``held`` parameter, not its ``cursor``, as what the puller
    holds, so the next pull may leave before this page is applied (ADR 0047)."""


def entry_json(entry: FeedEntry) -> dict[str, Any]:
    """One replicated entry: the change and its document's full state."""
    change = entry.change
    return {
        "origin": change.origin,
        "seq": change.seq,
        "collection": change.collection,
        "id": change.doc_id,
        "mutation_id": change.mutation_id,
        "hlc": change.hlc,
        "op": change.op,
        "state": entry.state,
    }


def page_json(
    page: FeedPage,
    *,
    region: str,
    origin: str,
    state: str,
    stable: Mapping[str, int],
    regions: Sequence[str],
    webhooks: Mapping[str, VersionVector] | None = None,
    traces: Mapping[str, Sequence[Position]] | None = None,
) -> dict[str, Any]:
    """The answer of ``GET /v1/replication/pull`` (``traces`` only when some are known)."""
    answer: dict[str, Any] = {
        "region": region,
        "origin": origin,
        "state": state,
        "entries": [entry_json(entry) for entry in page.entries],
        "cursor": cursor_mod.encode(page.vector),
        "has_more": page.has_more,
        "head": dict(page.head),
        "stable": dict(stable),
        "regions": sorted(regions),
        "accepts_held": True,
    }
    if webhooks is not None:
        answer["webhooks"] = {sub_id: dict(vector) for sub_id, vector in webhooks.items()}
    if traces:
        answer["traces"] = {value: [list(p) for p in made] for value, made in traces.items()}
    return answer


def _webhooks(value: Any) -> dict[str, VersionVector] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(sub_id, str) and 0 < len(sub_id) <= 64 for sub_id in value
    ):
        raise ValidationError("webhooks must map subscription ids to vectors", field="webhooks")
    return {sub_id: _vector(vector, "webhooks") for sub_id, vector in value.items()}


def _traces(value: Any, entries: int) -> dict[str, list[Position]]:
    """A page's ``traces``: at most one position per entry, each under a W3C traceparent."""
    if value is None:
        return {}
    bad = ValidationError("traces must map traceparents to positions", field="traces")
    if not isinstance(value, dict):
        raise bad
    traces: dict[str, list[Position]] = {}
    count = 0
    for traceparent, positions in value.items():
        if not _TRACEPARENT.fullmatch(traceparent) or not isinstance(positions, list):
            raise bad
        parsed = []
        for position in positions:
            if not (isinstance(position, list) and len(position) == 2):
                raise bad
            origin, seq = position
            valid_seq = isinstance(seq, int) and not isinstance(seq, bool) and 0 < seq < 2**63
            if not (isinstance(origin, str) and cursor_mod.ORIGIN_PATTERN.fullmatch(origin)):
                raise bad
            if not valid_seq:
                raise bad
            parsed.append((origin, seq))
        count += len(parsed)
        traces[traceparent] = parsed
    if count > entries:
        raise bad
    return traces


def _vector(value: Any, name: str) -> VersionVector:
    if not isinstance(value, dict) or len(value) > cursor_mod.MAX_ORIGINS:
        raise ValidationError(f"{name} must be a version vector", field=name)
    for origin, seq in value.items():
        valid = isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63
        if not cursor_mod.ORIGIN_PATTERN.fullmatch(origin) or not valid:
            raise ValidationError(f"{name} must be a version vector", field=name)
    return dict(value)


def _text(item: Mapping[str, Any], key: str, pattern: Any) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(f"entry {key} is missing or malformed", field=key)
    return value


def _state(state: Any) -> dict[str, Any]:
    if not isinstance(state, dict) or set(state) != _STATE_KEYS:
        raise ValidationError("entry state must be a document state", field="state")
    if not (isinstance(state["f"], dict) and isinstance(state["n"], dict)):
        raise ValidationError("entry state must be a document state", field="state")
    if not (isinstance(state["s"], str) and isinstance(state["x"], str)):
        raise ValidationError("entry state must be a document state", field="state")
    return state


def parse_entry(item: Any) -> FeedEntry:
    """One entry of a replication page; anything malformed is a ValidationError."""
    if not isinstance(item, dict):
        raise ValidationError("an entry must be an object", field="entries")
    seq = item.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**63:
        raise ValidationError("entry seq must be a positive integer", field="seq")
    op = item.get("op")
    if op not in _OPS:
        raise ValidationError("entry op is unknown", field="op")
    stamp = item.get("hlc")
    if not isinstance(stamp, str):
        raise ValidationError("entry hlc is malformed", field="hlc")
    hlc.decode(stamp)
    state = _state(item.get("state"))
    change = Change(
        origin=_text(item, "origin", cursor_mod.ORIGIN_PATTERN),
        seq=seq,
        collection=_text(item, "collection", COLLECTION_PATTERN),
        doc_id=_text(item, "id", ID_PATTERN),
        mutation_id=_text(item, "mutation_id", MUTATION_ID_PATTERN),
        hlc=stamp,
        op=op,
    )
    return FeedEntry(change=change, data=None, version="", state=state)


def parse_page(body: Any) -> ReplicaPage:
    """A peer's answer, checked field by field (a peer is trusted, but not its bugs)."""
    if not isinstance(body, dict):
        raise ValidationError("a replication page must be a JSON object")
    region, state = body.get("region"), body.get("state")
    if not isinstance(region, str) or not REGION_PATTERN.fullmatch(region):
        raise ValidationError("the page names no valid region", field="region")
    if state not in REGION_STATES:
        raise ValidationError("the page names no valid region state", field="state")
    origin = body.get("origin")
    if origin is not None and not (
        isinstance(origin, str)
        and cursor_mod.ORIGIN_PATTERN.fullmatch(origin)
        and region_of(origin) == region
    ):
        raise ValidationError("origin must be an origin of the page's region", field="origin")
    entries = body.get("entries")
    if not isinstance(entries, list):
        raise ValidationError("entries must be a list", field="entries")
    regions = body.get("regions", [])
    if not isinstance(regions, list) or not all(
        isinstance(name, str) and REGION_PATTERN.fullmatch(name) for name in regions
    ):
        raise ValidationError("regions must list region names", field="regions")
    has_more, cursor = body.get("has_more"), body.get("cursor")
    if not isinstance(has_more, bool):
        raise ValidationError("has_more must be a boolean", field="has_more")
    if not isinstance(cursor, str):
        raise ValidationError("cursor must be a string", field="cursor")
    return ReplicaPage(
        region=region,
        state=str(state),
        entries=[parse_entry(item) for item in entries],
        vector=cursor_mod.decode(cursor),
        has_more=has_more,
        head=_vector(body.get("head"), "head"),
        stable=_vector(body.get("stable", {}), "stable"),
        regions=tuple(regions),
        origin=origin,
        webhooks=_webhooks(body.get("webhooks")),
        traces=_traces(body.get("traces"), len(entries)),
        accepts_held=body.get("accepts_held") is True,
    )


# anti-entropy (docs/adr/0032-state-transfer-and-anti-entropy.md) ------------------------------


@dataclass(frozen=True, slots=True)
class Digest:
    """A peer's bucket digests per collection, and the head they were computed at."""

    region: str
    head: VersionVector
    buckets: int
    collections: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class BucketDoc:
    """One document of a peer's bucket: its summary and full state."""

    summary: DocSummary
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Bucket:
    """Every document, tombstones included, of one bucket of a peer's collection."""

    region: str
    head: VersionVector
    docs: list[BucketDoc]


def digest_json(digest: Digest) -> dict[str, Any]:
    """The answer of ``GET /v1/replication/digest``."""
    return {
        "region": digest.region,
        "head": dict(digest.head),
        "buckets": digest.buckets,
        "collections": digest.collections,
    }


def bucket_json(bucket: Bucket) -> dict[str, Any]:
    """The answer of ``GET /v1/replication/bucket``."""
    return {
        "region": bucket.region,
        "head": dict(bucket.head),
        "docs": [
            {
                "id": doc.summary.doc_id,
                "version": doc.summary.version,
                "origin": doc.summary.origin,
                "seq": doc.summary.seq,
                "hlc": doc.summary.hlc,
                "deleted": doc.summary.deleted,
                "state": doc.state,
            }
            for doc in bucket.docs
        ],
    }


def _region(body: Any) -> str:
    if not isinstance(body, dict):
        raise ValidationError("an anti-entropy answer must be a JSON object")
    region = body.get("region")
    if not isinstance(region, str) or not REGION_PATTERN.fullmatch(region):
        raise ValidationError("the answer names no valid region", field="region")
    return region


def parse_digest(body: Any) -> Digest:
    """A peer's answer to ``GET /v1/replication/digest``, checked."""
    region = _region(body)
    buckets = body.get("buckets")
    if not isinstance(buckets, int) or isinstance(buckets, bool) or buckets < 1:
        raise ValidationError("buckets must be a positive integer", field="buckets")
    collections = body.get("collections")
    if not isinstance(collections, dict):
        raise ValidationError("collections must be an object", field="collections")
    for name, row in collections.items():
        valid = isinstance(row, list) and len(row) == buckets
        if not COLLECTION_PATTERN.fullmatch(name) or not valid:
            raise ValidationError("a collection's digests are malformed", field="collections")
        if not all(isinstance(value, str) and _HEX.fullmatch(value) for value in row):
            raise ValidationError("a collection's digests are malformed", field="collections")
    return Digest(region, _vector(body.get("head"), "head"), buckets, collections)


def parse_bucket(body: Any, collection: str) -> Bucket:
    """A peer's answer to ``GET /v1/replication/bucket``, checked."""
    region = _region(body)
    docs = body.get("docs")
    if not isinstance(docs, list):
        raise ValidationError("docs must be a list", field="docs")
    parsed = []
    for item in docs:
        if not isinstance(item, dict):
            raise ValidationError("a bucket document must be an object", field="docs")
        seq, deleted, version = item.get("seq"), item.get("deleted"), item.get("version")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
            raise ValidationError("a bucket document's seq is malformed", field="seq")
        if not isinstance(deleted, bool) or not isinstance(version, str):
            raise ValidationError("a bucket document is malformed", field="docs")
        stamp = item.get("hlc")
        if not isinstance(stamp, str):
            raise ValidationError("a bucket document's hlc is malformed", field="hlc")
        hlc.decode(stamp)
        summary = DocSummary(
            collection=collection,
            doc_id=_text(item, "id", ID_PATTERN),
            version=version,
            origin=_text(item, "origin", cursor_mod.ORIGIN_PATTERN),
            seq=seq,
            hlc=stamp,
            deleted=deleted,
        )
        parsed.append(BucketDoc(summary, _state(item.get("state"))))
    return Bucket(region, _vector(body.get("head"), "head"), parsed)
