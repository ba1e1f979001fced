"""The ``Store`` protocol: where a region's documents and change feed live.

Contract for every backend (checked by tests/storage/test_conformance.py):

- ``apply`` returns only after the mutations are durable (I1); concurrent callers share one
  transaction and one fsync (group commit). Results come back in the order given. Applying a
  ``mutation_id`` again has no effect and answers ``duplicate`` with the original ``(origin, seq)``.
- ``pull`` never exposes a seq of an origin before every smaller seq of that origin is committed
  (I3); the cursor it returns covers exactly what the reader has been given.
- Backend errors never escape: a store that cannot serve raises ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Change, MutationResult, StoredDoc
from breakwater.core.mutation import Mutation
from breakwater.core.query import Query, Visible
from breakwater.core.records import record


@record
class FeedEntry:
    """A change and the document's current merged state (``data`` is ``None`` for a tombstone).

    Read with the state (``include_state``), an entry also tells when its change was committed
    (``at_ms``, the store's clock) and whether the state is the one this change left
    (``current``): a later change of the document supersedes it. The archive needs both to
    rebuild the store as it was at a given moment (ops/archive.py).
    """

    change: Change
    data: dict[str, Any] | None
    version: str
    state: dict[str, Any] | None = None
    at_ms: int | None = None
    current: bool = True


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of the change feed and the cursor vector to continue from."""

    entries: list[FeedEntry]
    vector: VersionVector
    has_more: bool
    head: VersionVector


@dataclass(slots=True)
class CommitPhases:
    """When one caller's write passed each phase of its group commit (``time.time_ns()``).

    A store fills it in only for a caller that passes one (a traced write), so the untraced
    path reads no clock for it. ``queued`` to ``started`` is the wait for the writer, ``started``
    to ``merged`` the reads and merges of the whole group, ``merged`` to ``committed`` its
    writes and the durable commit (the fsync).
    """

    queued: int = 0
    started: int = 0
    merged: int = 0
    committed: int = 0
    group: int = 0
    """Mutations in the group commit."""


@dataclass(frozen=True, slots=True)
class QueryPage:
    """Documents matching a query and the token of the next page (``None`` at the end)."""

    docs: list[StoredDoc]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """What a retention pass removed (a removed change's mutation id is forgotten with it)."""

    changes_removed: int = 0
    tombstones_purged: int = 0
    low_water: VersionVector = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedConflict:
    """A merge in which fields of a concurrent write lost, as the store keeps it."""

    collection: str
    doc_id: str
    mutation_id: str
    origin: str
    seq: int
    fields: list[str]
    winner_hlc: str
    at_ms: int


@record
class ReplicaApplied:
    """What one replicated batch did: entries applied and skipped (already held)."""

    applied: int
    skipped: int
    head: dict[str, int] = field(default_factory=dict)
    """The new local seq of every origin the batch advanced."""


@dataclass(frozen=True, slots=True)
class DocSummary:
    """What anti-entropy compares of a document: its version and the change that last touched
    it here (docs/adr/0032-state-transfer-and-anti-entropy.md)."""

    collection: str
    doc_id: str
    version: str
    origin: str
    seq: int
    hlc: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class DocSummaries:
    """Every document's summary and the head, read in one snapshot."""

    head: VersionVector
    docs: list[DocSummary]


@dataclass(frozen=True, slots=True)
class Repair:
    """A peer's state of a document to join into the local one, or (``state`` None) a delete:
    applied at a new local position when it changes the document, so that devices and other
    regions learn it through the feed."""

    collection: str
    doc_id: str
    mutation_id: str
    state: dict[str, Any] | None
    only_at: tuple[str, int] | None = None
    """Apply only while the document's last change is still this ``(origin, seq)``: a delete
    decided on a summary must not remove a write that arrived since."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Who runs a region's one replicator for a peer, until when (epoch milliseconds)."""

    holder: str = ""
    expires_ms: int = 0

    @classmethod
    def parse(cls, value: Any) -> Lease:
        """The lease from its stored JSON (no lease: a free one)."""
        if not isinstance(value, dict):
            return cls()
        return cls(str(value.get("holder", "")), int(value.get("expires_ms", 0)))

    def free_for(self, holder: str, now_ms: int) -> bool:
        """True when ``holder`` may take or renew the lease at ``now_ms``."""
        return not self.holder or self.holder == holder or self.expires_ms <= now_ms

    def dump(self) -> dict[str, Any]:
        """The stored JSON form."""
        return {"holder": self.holder, "expires_ms": self.expires_ms}


class Store(Protocol):
    """A region's document store. Lifecycle: ``await open()`` … ``await aclose()``."""

    async def open(self, *, restored: bool = False) -> None:
        """Create or migrate the schema and start serving.

        The store keeps an incarnation id and sets its engine's origin from it (ADR 0018): a
        new one when the store is created and when ``restored`` says the store was just put
        back from a backup, so that it never hands out a position ``(origin, seq)`` twice.
        Stores opened at once over one database agree on one incarnation.
        """

    @property
    def origin(self) -> str:
        """The origin of this store's own changes: region and incarnation (set by ``open``)."""

    async def aclose(self) -> None:
        """Finish every queued write, then release connections. Idempotent."""

    async def apply(
        self, mutations: Sequence[Mutation], phases: CommitPhases | None = None
    ) -> list[MutationResult]:
        """Apply mutations durably, once each (see module docstring); fill ``phases`` in when
        given."""

    async def get(self, collection: str, doc_id: str) -> StoredDoc | None:
        """A document, tombstones included; ``None`` if it was never written."""

    async def query(self, query: Query, visible: Visible | None = None) -> QueryPage:
        """Live documents matching ``query`` in its order, one page, as if the documents whose
        data ``visible`` refuses did not exist: the page holds the first ``query.limit``
        visible matches, ``next_token`` exists only if another visible match follows and names
        the last document of the page (docs/adr/0016-queries-under-read-rules.md)."""

    async def pull(
        self,
        vector: VersionVector,
        collections: Sequence[str] | None,
        limit: int,
        include_state: bool = False,
        *,
        urgent: bool = False,
        past_horizon: bool = False,
    ) -> FeedPage:
        """Changes not covered by ``vector`` in commit order; ``CursorExpired`` if it is too old.

        ``urgent``: the caller waits on this read to deliver changes live (the realtime
        follower); a store whose reads are local may serve it on the calling thread, skipping
        the hop to a reader thread and back.
        ``past_horizon``: serve ``vector`` even behind the low-water marks: a full state
        transfer continuing from a cursor the empty one led to (what compaction removed since
        is a superseded change, whose document comes later, or a purged delete, which
        anti-entropy handles: docs/adr/0032-state-transfer-and-anti-entropy.md).
        """

    async def head(self) -> VersionVector:
        """The committed high-water vector of this store."""

    async def compact(self, horizon_ms: int, now_ms: int | None = None) -> CompactionReport:
        """Drop superseded changes and tombstones past the horizon; raise low-water marks."""

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""

    async def conflicts(self, limit: int, collection: str | None = None) -> list[RecordedConflict]:
        """The ``limit`` most recently recorded conflicts (of ``collection``), newest first."""

    async def apply_replicated(
        self, entries: Sequence[FeedEntry], progress: Mapping[str, object] | None = None
    ) -> ReplicaApplied:
        """Apply a peer region's feed entries (each with its document's full state) in one
        durable transaction, at their original ``(origin, seq)``, with the same merge as device
        writes; record their mutation ids (I2); skip entries the local head already covers;
        write ``progress`` (replication bookkeeping, key -> JSON) in the same transaction.
        Entries must be in increasing seq order per origin (I3), else ``ValidationError``
        before any work."""

    async def replication_state(self) -> dict[str, Any]:
        """Every replication bookkeeping value by key."""

    async def doc_summaries(self, collection: str | None = None) -> DocSummaries:
        """Every document (of ``collection``), tombstones included, and the head, in one
        snapshot: what anti-entropy digests."""

    async def apply_repairs(self, repairs: Sequence[Repair]) -> list[StoredDoc]:
        """Join each repair's state into its document (or delete it) in one durable
        transaction; a repair that changes the document is written at a new local position
        (a new change of this store's origin). Returns the documents that changed."""

    async def put_replication_state(
        self, writes: Mapping[str, object], *, only_new: bool = False
    ) -> None:
        """Write bookkeeping values durably (``only_new``: keep values already stored)."""

    async def take_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew lease ``name`` for ``holder``; False while another holder's is live.

        ``ttl_ms = 0`` gives a held lease up (it ends now, so another holder takes it at once)
        and changes nothing when another holder's lease is live.
        """
