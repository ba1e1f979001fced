"""Applying a peer region's feed entries inside one write transaction (both SQL backends).

A replicated entry carries the document's full CRDT state at the peer and the change's original
position ``(origin, seq)``. Applying it is the same join as a device write (so replicas converge
whatever path a change takes) but the change keeps its position: a device's cursor stays valid in
every region, and a third region learns the change from this one (transitive forwarding). An
entry already covered by this store's head for its origin is skipped, so pages that overlap
(two peers forwarding one origin, a retried page) apply once. The mutation id is recorded with
the position, so a device re-pushing the mutation here gets ``duplicate`` (I2).

Counters are not folded here: an entry keeps its position's state as its origin made it, so a
fold made here would stay here (peers skip the position) and replicas would hold different,
equal-valued states for good. Folding happens at a local write, whose new change carries the
folded state to every region (ADR 0019).
"""

from __future__ import annotations

from collections.abc import Sequence

from breakwater.core import codec, document
from breakwater.core.engine import Change, Engine, StoredDoc
from breakwater.core.errors import ValidationError
from breakwater.core.mutation import Mutation
from breakwater.storage._staging import StagedBatch
from breakwater.storage.base import FeedEntry, Repair, ReplicaApplied


def check_entries(entries: Sequence[FeedEntry]) -> None:
    """Refuse a batch that would break per-origin seq order (I3) or lacks a state, before any
    work: skipping a smaller seq after a larger one would hide that change here for good."""
    last: dict[str, int] = {}
    for entry in entries:
        change = entry.change
        if entry.state is None:
            raise ValidationError(
                f"entry {change.origin}:{change.seq} carries no document state", field="entries"
            )
        if change.seq <= last.get(change.origin, 0):
            raise ValidationError(
                f"entries of origin {change.origin!r} are not in increasing seq order",
                field="entries",
            )
        last[change.origin] = change.seq


def stage_entries(
    staged: StagedBatch, engine: Engine, entries: Sequence[FeedEntry]
) -> ReplicaApplied:
    """Join every entry not yet held into its document and stage it at its original position."""
    applied = skipped = 0
    for entry in entries:
        change = entry.change
        if change.seq <= staged.seq_of(change.origin):
            skipped += 1
            continue
        assert entry.state is not None  # check_entries
        current = staged.load(change.collection, change.doc_id)
        remote = document.upgrade(entry.state)
        state = remote if current is None else document.join(current.state, remote)
        state = document.normalize(state)
        newest = document.newest_write(state)
        visible = document.visible(state, newest)
        engine.clock.observe(change.hlc)
        stored = StoredDoc(
            collection=change.collection,
            doc_id=change.doc_id,
            state=state,
            data=visible,
            version=document.version(state),
            hlc=newest,
            origin=change.origin,
            seq=change.seq,
        )
        staged.save_replicated(stored, change, None if visible is None else codec.dumps(visible))
        applied += 1
    staged.keep_request()
    return ReplicaApplied(applied, skipped, staged.touched)


def repair_changes(origin: str, repairs: Sequence[Repair]) -> list[Change]:
    """Placeholders naming what a batch of repairs touches, for a backend's prefetch."""
    return [Change(origin, 0, r.collection, r.doc_id, r.mutation_id, "", "set") for r in repairs]


def stage_repairs(
    staged: StagedBatch, engine: Engine, repairs: Sequence[Repair]
) -> list[StoredDoc]:
    """Join each repair into its document; one that changes it gets a new local position.

    The new position is this store's own origin, so the repair reaches local devices (their
    cursors do not cover it) and every other region (their heads do not cover it) like a local
    write. A delete goes through the engine as a device's delete would: its stamp is newer than
    every write this region holds.
    """
    repaired: list[StoredDoc] = []
    for repair in repairs:
        current = staged.load(repair.collection, repair.doc_id)
        if repair.only_at is not None and (
            current is None or (current.origin, current.seq) != repair.only_at
        ):
            continue
        if repair.state is None:
            if current is None or current.deleted:
                continue
            mutation = Mutation(
                repair.mutation_id, repair.collection, repair.doc_id, "delete", None
            )
            result = engine.apply(staged, mutation)
            if result.status == "applied" and result.doc is not None:
                repaired.append(result.doc)
            continue
        remote = document.upgrade(repair.state)
        state = remote if current is None else document.join(current.state, remote)
        state = document.normalize(state)
        version = document.version(state)
        if current is not None and version == current.version:
            continue  # the peer's state adds nothing here
        newest = document.newest_write(state)
        visible = document.visible(state, newest)
        seq = staged.next_seq(engine.origin)
        change = Change(
            engine.origin,
            seq,
            repair.collection,
            repair.doc_id,
            repair.mutation_id,
            engine.clock.now(),
            "delete" if visible is None else "set",
        )
        stored = StoredDoc(
            collection=repair.collection,
            doc_id=repair.doc_id,
            state=state,
            data=visible,
            version=version,
            hlc=newest,
            origin=engine.origin,
            seq=seq,
        )
        staged.save(stored, change, None if visible is None else codec.dumps(visible))
        repaired.append(stored)
    staged.keep_request()
    return repaired
