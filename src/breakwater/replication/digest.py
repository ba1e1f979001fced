"""Anti-entropy digests: what two regions compare to find documents that differ, and what a
region does about each difference (docs/adr/0032-state-transfer-and-anti-entropy.md).

A collection's live documents are spread over ``buckets`` by a hash of their id; a bucket's
digest is the XOR of a hash of ``(id, version)`` per document, so it does not depend on the order
documents are read in and two regions holding the same documents agree on every bucket. Only
buckets whose digests differ are listed document by document. Tombstones stay out of digests:
regions purge them at different times, which is no divergence; they are in bucket listings, so
a delete one region lost is found from the live copy the other side lacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from breakwater.core import hlc
from breakwater.core.cursor import VersionVector
from breakwater.storage.base import DocSummary

EMPTY = "0" * 32
DigestMap = dict[str, list[str]]


def bucket_of(doc_id: str, buckets: int) -> int:
    """The bucket of a document id: stable across regions, processes and versions."""
    digest = hashlib.blake2b(doc_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def _doc_hash(summary: DocSummary) -> int:
    key = f"{summary.doc_id}\0{summary.version}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "big")


def digests(docs: Iterable[DocSummary], buckets: int) -> DigestMap:
    """Per collection, the digest of each bucket of its live documents."""
    sums: dict[str, list[int]] = {}
    for summary in docs:
        if summary.deleted:
            continue
        row = sums.setdefault(summary.collection, [0] * buckets)
        row[bucket_of(summary.doc_id, buckets)] ^= _doc_hash(summary)
    return {name: [f"{value:032x}" for value in row] for name, row in sums.items()}


def differing(
    local: Mapping[str, Sequence[str]], remote: Mapping[str, Sequence[str]]
) -> list[tuple[str, int]]:
    """``(collection, bucket)`` pairs whose digests differ (a missing collection is empty)."""
    found = []
    for name in sorted(set(local) | set(remote)):
        mine, theirs = local.get(name, ()), remote.get(name, ())
        for index in range(max(len(mine), len(theirs))):
            a = mine[index] if index < len(mine) else EMPTY
            b = theirs[index] if index < len(theirs) else EMPTY
            if a != b:
                found.append((name, index))
    return found


Verdict = Literal["join", "import", "delete_here", "purged_here", "skip"]


@dataclass(frozen=True, slots=True)
class Sides:
    """One document as each side holds it (None: not held), with the heads read with them."""

    local: DocSummary | None
    remote: DocSummary | None
    local_head: VersionVector
    remote_head: VersionVector


def _covers(head: VersionVector, summary: DocSummary) -> bool:
    return head.get(summary.origin, 0) >= summary.seq


def _older_than(summary: DocSummary, cutoff_ms: int) -> bool:
    return hlc.decode(summary.hlc).wall_ms < cutoff_ms


def verdict(sides: Sides, purge_cutoff_ms: int) -> Verdict:
    """What this region does about one document its bucket disagrees on.

    - Both hold it at different versions: join the peer's state, but only once this region holds
      the change that made it (else it is in flight and replication brings it).
    - Only the peer holds it: a tombstone is nothing to act on. A live document at a position
      this region's head covers was held here and is gone: if its newest write is older than
      the retention horizon (``purge_cutoff_ms``), its delete was purged here, so it must not
      come back (``purged_here``: the peer deletes it on its own round); else this region lost
      it: import it.
    - Only this region holds it, live, at a position the peer's head covers and older than the
      horizon: the peer deleted and purged it; delete it here (a new local position). A recent
      one is the peer's to import.
    """
    local, remote = sides.local, sides.remote
    if local is not None and remote is not None:
        if local.version == remote.version or not _covers(sides.local_head, remote):
            return "skip"
        return "join"
    if remote is not None:
        if remote.deleted or not _covers(sides.local_head, remote):
            return "skip"
        return "purged_here" if _older_than(remote, purge_cutoff_ms) else "import"
    if local is not None and not local.deleted and _covers(sides.remote_head, local):
        return "delete_here" if _older_than(local, purge_cutoff_ms) else "skip"
    return "skip"
