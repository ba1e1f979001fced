"""One anti-entropy round with one peer: compare bucket digests, list the buckets that differ,
and repair this region from the peer's states (docs/adr/0032-state-transfer-and-anti-entropy.md).

A repair is a join that changes a local document (or the delete of a document the peer deleted
and purged); it is written at a new local position, so local devices and every other region
learn it through the feed like any write. A round only repairs *this* region: the peer repairs
itself on its own round, from this region's states.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from breakwater.core.engine import StoredDoc
from breakwater.replication import digest
from breakwater.replication.wire import Bucket, BucketDoc, Digest
from breakwater.storage.base import DocSummaries, DocSummary, Repair, Store


class DigestSource(Protocol):
    """Where a round reads the peer's digests and buckets (its replication endpoints)."""

    async def digest(self, buckets: int) -> Digest:
        """The peer's digests."""

    async def bucket(self, collection: str, bucket: int, buckets: int) -> Bucket:
        """One bucket of the peer's collection, with full states."""


async def read_digest(store: Store, region: str, buckets: int) -> Digest:
    """This region's digests, as its replication endpoint serves them."""
    summaries = await store.doc_summaries()
    return Digest(region, summaries.head, buckets, digest.digests(summaries.docs, buckets))


async def read_bucket(
    store: Store, region: str, collection: str, bucket: int, buckets: int
) -> Bucket:
    """One bucket of this region's collection, tombstones included, with full states; the
    head is read before the documents (a document changed since is at a position it does not
    cover, which the comparing region leaves to replication)."""
    summaries = await store.doc_summaries(collection)
    docs = []
    for summary in summaries.docs:
        if digest.bucket_of(summary.doc_id, buckets) == bucket:
            doc = await store.get(collection, summary.doc_id)
            if doc is not None:
                current = DocSummary(
                    collection, doc.doc_id, doc.version, doc.origin, doc.seq, doc.hlc, doc.deleted
                )
                docs.append(BucketDoc(current, doc.state))
    return Bucket(region, summaries.head, docs)


class RepairTarget(Protocol):
    """What a round reads and writes locally."""

    async def doc_summaries(self, collection: str | None = None) -> DocSummaries:
        """Every local document's summary and the head, in one snapshot."""

    async def apply_repairs(self, repairs: Sequence[Repair]) -> list[StoredDoc]:
        """Apply repairs at new local positions; the documents that changed."""


@dataclass
class RoundReport:
    """What one round found and did."""

    buckets_differing: int = 0
    docs_compared: int = 0
    repaired: dict[str, list[str]] = field(default_factory=dict)
    """Repaired document ids per collection."""
    kept_deleted: int = 0
    """Documents the peer holds that this region deleted and purged: not brought back."""

    @property
    def repairs(self) -> int:
        """How many documents the round changed here."""
        return sum(len(ids) for ids in self.repaired.values())


async def run_round(
    peer: str,
    client: DigestSource,
    target: RepairTarget,
    *,
    buckets: int,
    purge_cutoff_ms: int,
) -> RoundReport:
    """Compare with ``peer`` once and repair what differs here."""
    report = RoundReport()
    local = await target.doc_summaries()
    remote = await client.digest(buckets)
    differing = digest.differing(digest.digests(local.docs, buckets), remote.collections)
    report.buckets_differing = len(differing)
    if not differing:
        return report
    wanted = set(differing)
    mine: dict[tuple[str, int], dict[str, DocSummary]] = {}
    for summary in local.docs:
        key = (summary.collection, digest.bucket_of(summary.doc_id, buckets))
        if key in wanted:
            mine.setdefault(key, {})[summary.doc_id] = summary
    repairs: list[Repair] = []
    for collection, index in differing:
        listing = await client.bucket(collection, index, buckets)
        theirs = {doc.summary.doc_id: doc for doc in listing.docs}
        here = mine.get((collection, index), {})
        for doc_id in sorted(set(here) | set(theirs)):
            report.docs_compared += 1
            remote_doc = theirs.get(doc_id)
            sides = digest.Sides(
                here.get(doc_id),
                None if remote_doc is None else remote_doc.summary,
                local.head,
                listing.head,
            )
            verdict = digest.verdict(sides, purge_cutoff_ms)
            report.kept_deleted += verdict == "purged_here"
            repair = _repair_for(peer, verdict, sides, remote_doc)
            if repair is not None:
                repairs.append(repair)
    if repairs:
        for doc in await target.apply_repairs(repairs):
            report.repaired.setdefault(doc.collection, []).append(doc.doc_id)
        for ids in report.repaired.values():
            ids.sort()
    return report


def _repair_for(
    peer: str, verdict: digest.Verdict, sides: digest.Sides, remote: BucketDoc | None
) -> Repair | None:
    mutation_id = f"repair:{peer}:{secrets.token_hex(8)}"
    if verdict in ("join", "import") and remote is not None:
        summary = remote.summary
        return Repair(summary.collection, summary.doc_id, mutation_id, remote.state)
    if verdict == "delete_here" and sides.local is not None:
        local = sides.local
        position = (local.origin, local.seq)
        return Repair(local.collection, local.doc_id, mutation_id, None, only_at=position)
    return None
