"""The sync engine: apply a mutation inside a store's transaction (dedupe, merge, feed entry).

The engine is synchronous and storage-agnostic: a store runs it inside its own write transaction
through the small :class:`WriteTarget` protocol, so the server, replication and the SDK's local
store all compute the same document from the same changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from breakwater.core import codec, document, incarnation
from breakwater.core.collections import CollectionConfig
from breakwater.core.errors import (
    BreakwaterError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ValidationError,
)
from breakwater.core.hlc import HybridClock
from breakwater.core.limits import Limits
from breakwater.core.mutation import Mutation
from breakwater.core.records import record


@record
class StoredDoc:
    """A document as a store holds it: replicated state plus what is derived from it."""

    collection: str
    doc_id: str
    state: document.State
    data: dict[str, Any] | None
    version: str
    hlc: str
    origin: str
    seq: int

    @property
    def deleted(self) -> bool:
        """True for a tombstone."""
        return self.data is None


@record
class Change:
    """One entry of the change feed: mutation ``mutation_id`` applied as ``(origin, seq)``."""

    origin: str
    seq: int
    collection: str
    doc_id: str
    mutation_id: str
    hlc: str
    op: str


@dataclass(frozen=True, slots=True)
class Conflict:
    """A merge in which (part of) a concurrent write lost to a newer one."""

    change: Change
    fields: list[str]
    winner_hlc: str


ResultStatus = Literal["applied", "duplicate", "rejected"]
_UNCONFIGURED = CollectionConfig("*")
"""The settings of every collection the config does not mention (one shared instance: a new
one per mutation cost a dataclass construction on every write)."""
MIN_INT64, MAX_UINT64 = -(2**63), 2**64 - 1


@record
class MutationResult:
    """What became of one mutation; ``origin``/``seq`` name its feed entry when not rejected."""

    mutation_id: str
    status: ResultStatus
    origin: str | None = None
    seq: int | None = None
    doc: StoredDoc | None = None
    created: bool = False
    error: BreakwaterError | None = None
    conflict_fields: list[str] = field(default_factory=list)
    prior: dict[str, Any] | None = None
    """An applied mutation's document state before it (``None``: a new document), so that a
    push answer can tell whether the device can derive the new state itself."""


class WriteTarget(Protocol):
    """What the engine needs from a store inside one write transaction."""

    def load(self, collection: str, doc_id: str) -> StoredDoc | None:
        """The stored document, tombstones included; ``None`` if never written."""

    def find_mutation(self, mutation_id: str) -> tuple[str, int] | None:
        """``(origin, seq)`` of an already applied mutation, including ones in this transaction."""

    def next_seq(self, origin: str) -> int:
        """The next seq of ``origin``; allocated in commit order because writes are serialised."""

    def save(self, doc: StoredDoc, change: Change, data_json: bytes | None) -> None:
        """Write the document and append its feed entry, and remember the mutation id."""

    def record_conflict(self, conflict: Conflict) -> None:
        """Keep a conflict so that it can be queried and counted."""


class Engine:
    """Applies mutations for one region with one clock and collection settings."""

    def __init__(
        self,
        region: str,
        clock: HybridClock,
        collections: Mapping[str, CollectionConfig] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.region = region
        self.origin = region
        """The origin new changes get: set by :meth:`incarnate` when the store opens."""
        self.clock = clock
        self.stable: dict[str, int] | None = None
        """The causally stable vector of a region with peers (replication keeps it current,
        docs/adr/0022-replication.md); ``None`` for a deployment of one region."""
        self.collections = dict(collections or {})
        self.limits = limits or Limits()

    def incarnate(self, store_incarnation: str) -> None:
        """Write under the region qualified by the opened store's incarnation (ADR 0018)."""
        self.origin = incarnation.origin(self.region, store_incarnation)

    def collection(self, name: str) -> CollectionConfig:
        """The settings of ``name`` (defaults for collections the config does not mention)."""
        config = self.collections.get(name)
        return config if config is not None else _UNCONFIGURED

    def stable_after(self, seq: int) -> dict[str, int]:
        """What every replica holds once this region commits ``seq``: the vector a counter
        folds its increments up to. With one region it is the region's own head (nothing can
        bring an increment back under another position); with peers it is the causally stable
        vector replication keeps (docs/adr/0019-compact-counters.md, 0022-replication.md)."""
        stable = self.stable
        return {self.origin: seq} if stable is None else dict(stable)

    def apply(self, target: WriteTarget, mutation: Mutation) -> MutationResult:
        """Apply one mutation once; state-dependent refusals come back as ``rejected``."""
        seen = target.find_mutation(mutation.mutation_id)
        if seen is not None:
            return MutationResult(mutation.mutation_id, "duplicate", origin=seen[0], seq=seen[1])
        try:
            return self._apply_new(target, mutation)
        except BreakwaterError as error:
            return MutationResult(mutation.mutation_id, "rejected", error=error)

    def _apply_new(self, target: WriteTarget, mutation: Mutation) -> MutationResult:
        current = target.load(mutation.collection, mutation.doc_id)
        live = current is not None and not current.deleted
        if mutation.must_exist and not live:
            raise NotFound(f"document {mutation.collection}/{mutation.doc_id} does not exist")
        if mutation.if_match is not None and not (
            live
            and current is not None
            and ("*" in mutation.if_match or current.version in mutation.if_match)
        ):
            raise PreconditionFailed(
                "the document is not at the version given in If-Match",
                current_version=current.version if live and current is not None else None,
            )
        if mutation.hlc is None:
            if current is not None:
                # A server-stamped write orders after all the document holds, even when another
                # writer of the store (a worker, a node) stamped it with a clock slightly ahead.
                self.clock.observe(current.hlc)
            hlc = self.clock.now()
        else:
            hlc = mutation.hlc
            self.clock.observe(hlc)
        config = self.collection(mutation.collection)
        op, data = mutation.op, mutation.data
        before = current.data if live and current is not None else None
        if mutation.guard is not None:
            data = mutation.guard.prepare(before, op, data)
        if config.conflict == "document" and op in ("patch", "increment"):
            op, data = "set", _document_level_update(current, op, data or {})
        delta, state, visible, newest = document.apply(
            current.state if current is not None else None,
            current.hlc if current is not None else "",
            op,
            data,
            hlc,
            mutation.mutation_id,
        )
        if mutation.guard is not None:
            # Before the checks of the merged document: their answers depend on the document
            # as stored, which a caller the rule refuses must learn nothing of.
            mutation.guard.check(before, visible, mutation.op)
        data_json = None
        if visible is not None:
            if mutation.op == "increment":
                _check_counters(visible, mutation.data or {})
            config.validate(visible)
            data_json = codec.dumps(visible)
            if len(data_json) > self.limits.max_document_bytes:
                raise PayloadTooLarge(
                    f"the merged document would be {len(data_json)} bytes; "
                    f"the limit is {self.limits.max_document_bytes}",
                    limit=self.limits.max_document_bytes,
                )
        seq = target.next_seq(self.origin)
        if op == "increment":
            state = document.settle(
                state, mutation.mutation_id, self.origin, seq, self.stable_after(seq)
            )
            visible = document.visible(state, newest)  # folding may round a float sum anew
            data_json = None if visible is None else codec.dumps(visible)
        change = Change(
            self.origin, seq, mutation.collection, mutation.doc_id, mutation.mutation_id, hlc, op
        )
        stored = StoredDoc(
            collection=mutation.collection,
            doc_id=mutation.doc_id,
            state=state,
            data=visible,
            version=document.version(state),
            hlc=newest,
            origin=self.origin,
            seq=seq,
        )
        target.save(stored, change, data_json)
        lost = document.lost_fields(delta, state) if current is not None and hlc < newest else []
        if lost:
            target.record_conflict(Conflict(change, lost, stored.hlc))
        return MutationResult(
            mutation.mutation_id,
            "applied",
            origin=self.origin,
            seq=seq,
            doc=stored,
            created=current is None or current.deleted,
            conflict_fields=lost,
            prior=current.state if current is not None else None,
        )


def _check_counters(visible: dict[str, Any], increments: dict[str, Any]) -> None:
    """Refuse an increment whose total leaves what every replica can store exactly."""
    for name in increments:
        total = visible.get(name)
        if isinstance(total, float) and not math.isfinite(total):
            raise ValidationError(f"increment of {name!r} would make it infinite", field="data")
        if isinstance(total, int) and not MIN_INT64 <= total <= MAX_UINT64:
            raise ValidationError(f"increment of {name!r} would pass 64 bits", field="data")


def _document_level_update(
    current: StoredDoc | None, op: str, data: dict[str, Any]
) -> dict[str, Any]:
    """Under document-level LWW a patch or increment becomes a whole-document ``set``."""
    merged = dict(current.data) if current is not None and current.data is not None else {}
    if op == "patch":
        for name, value in data.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
    else:
        for name, amount in data.items():
            base = merged.get(name)
            valid = isinstance(base, int | float) and not isinstance(base, bool)
            merged[name] = (base if valid else 0) + amount
    return merged
