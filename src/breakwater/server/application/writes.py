"""The node's write path: every write, whichever route or worker makes it, goes through here.

Admission (access policy, clock skew, the per-document write guard), the durable apply, the read
cache's invalidation before the answer and the metrics happen once, here, so the push route, the
REST document routes and (later) replication cannot drift apart. Parsing and HTTP answers stay in
the routes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from breakwater.auth.identity import Identity
from breakwater.auth.policy import Policy
from breakwater.core.engine import MutationResult, StoredDoc
from breakwater.core.errors import Forbidden
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation, WriteGuard
from breakwater.obs.metrics import Metrics
from breakwater.replication.wire import Position
from breakwater.server.application.region import RegionView
from breakwater.server.read_cache import ReadCache
from breakwater.storage.base import CommitPhases, FeedEntry, Repair, ReplicaApplied, Store

if TYPE_CHECKING:
    from breakwater.obs.tracing import Tracing

Channel = Literal["push", "rest"]
"""Who wrote: the label of refused writes in ``breakwater_access_denied_total``."""


class Admission:
    """:meth:`Writes.admit` for the mutations of one request, in their order.

    Whether the caller may write a collection, and its write guard, depend on the collection
    alone (the guard holds no state of a mutation), so they are decided once per collection
    of the request, not once per mutation: in a push of 100 mutations of one collection that
    was a hundred policy look-ups. A mutation's stamp is still checked on its own. The errors
    and their order are those of admitting each mutation in turn: a collection's refusal is
    met at its first mutation.
    """

    __slots__ = ("_guards", "_identity", "_writes")

    def __init__(self, writes: Writes, identity: Identity | None) -> None:
        self._writes = writes
        self._identity = identity
        self._guards: dict[str, WriteGuard | None] = {}

    def __call__(self, mutation: Mutation) -> Mutation:
        """``mutation`` with its guard, or the problem that refuses it."""
        collection = mutation.collection
        if collection in self._guards:
            guard = self._guards[collection]
        else:
            guard = self._guards[collection] = self._writes.guard_for(self._identity, collection)
        if mutation.hlc is not None:
            self._writes.clock.check(mutation.hlc)
        return mutation if guard is None else replace(mutation, guard=guard)


class Writes:
    """Admits and applies mutations for a caller; one instance per node."""

    def __init__(
        self,
        store: Store,
        cache: ReadCache,
        policy: Policy,
        clock: HybridClock,
        metrics: Metrics,
        tracing: Tracing | None = None,
        region: RegionView | None = None,
    ) -> None:
        self.store = store
        self.region = region
        self.cache = cache
        self.policy = policy
        self.clock = clock
        self.metrics = metrics
        self.tracing = tracing
        """None when the node does not trace: then no span or clock read is added here. A
        write is traced when its caller's span is recorded (a request's, a replication
        batch's)."""

    def admit(self, identity: Identity | None, mutation: Mutation) -> Mutation:
        """``mutation`` as it may be applied for ``identity``, with its write guard attached.

        Raises ``RegionStandby`` on a standby region, ``Forbidden`` or ``Unauthorized`` when
        the caller may not write the collection at all, and ``ClockSkew`` when its stamp is
        too far ahead. What depends on the stored document (the write rule, the owner field)
        is checked by the guard during the apply and rejects that mutation only.
        """
        return self.admission(identity)(mutation)

    def admission(self, identity: Identity | None) -> Admission:
        """:meth:`admit` for the many mutations of one request (a push)."""
        return Admission(self, identity)

    def guard_for(self, identity: Identity | None, collection: str) -> WriteGuard | None:
        """Refuse a caller who may not write ``collection`` at all; else its write guard."""
        if self.region is not None:
            self.region.require_writable()  # a standby takes no write, before any other check
        self.policy.admit(identity, collection, "write")
        return self.policy.guard(identity, collection)

    async def apply_replicated(
        self,
        entries: Sequence[FeedEntry],
        progress: Mapping[str, object] | None = None,
        traces: Mapping[str, Sequence[Position]] | None = None,
    ) -> ReplicaApplied:
        """Apply a page a peer region sent (replication's write path), with the replicator's
        ``progress`` in the same transaction. Realtime and long-polls see the changes through
        the feed like any commit; the read cache forgets the documents before this returns.
        ``traces`` (the origin writes' ``traceparent`` values) put the apply in their traces."""
        if self.tracing is None or not traces:
            result = await self.store.apply_replicated(entries, progress)
        else:
            started = time.time_ns()
            result = await self.store.apply_replicated(entries, progress)
            self.tracing.replicated(traces, started, time.time_ns())
        if result.applied:
            await self.cache.committed(
                [
                    (e.change.collection, e.change.doc_id, e.change.origin, e.change.seq)
                    for e in entries
                ]
            )
        return result

    async def apply_repairs(self, repairs: Sequence[Repair]) -> list[StoredDoc]:
        """Apply anti-entropy repairs (new local positions); the read cache forgets the
        repaired documents before this returns, and the feed carries them everywhere."""
        repaired = await self.store.apply_repairs(repairs)
        if repaired:
            await self.cache.committed(
                [(doc.collection, doc.doc_id, doc.origin, doc.seq) for doc in repaired]
            )
        return repaired

    async def apply(self, mutations: Sequence[Mutation], channel: Channel) -> list[MutationResult]:
        """Apply admitted ``mutations`` durably, one result each, in order.

        Before it returns, the read cache no longer serves what an applied mutation replaced,
        so the caller's next read on this node sees its write.
        """
        if self.tracing is None or not self.tracing.recording():
            results = await self.store.apply(mutations)
        else:
            results = await self._traced_apply(self.tracing, mutations, channel)
        await self.cache.committed(
            [
                (m.collection, m.doc_id, r.origin, r.seq)
                for m, r in zip(mutations, results, strict=True)
                if r.status == "applied" and r.origin is not None and r.seq is not None
            ]
        )
        for status, count in Counter(result.status for result in results).items():
            self.metrics.count_mutations(status, count)
        denied = sum(isinstance(result.error, Forbidden) for result in results)
        if denied:
            self.metrics.access_denied.labels(channel).inc(denied)
        return results

    async def _traced_apply(
        self, tracing: Tracing, mutations: Sequence[Mutation], channel: Channel
    ) -> list[MutationResult]:
        """The apply in a ``write`` span with its commit phases as children; the changes it
        made remember the span, so their realtime deliveries link to it."""
        with tracing.span("write", **{"breakwater.channel": channel}) as span:
            phases = CommitPhases()
            results = await self.store.apply(mutations, phases)
            if phases.started:
                tracing.child_span("write.queue_wait", phases.queued, phases.started)
            if phases.merged:
                tracing.child_span("write.merge", phases.started, phases.merged)
                tracing.child_span("write.commit", phases.merged, phases.committed)
            span.set_attribute("breakwater.mutations", len(mutations))
            span.set_attribute("breakwater.group_commit.mutations", phases.group)
            tracing.remember(
                (r.origin, r.seq)
                for r in results
                if r.status == "applied" and r.origin is not None and r.seq is not None
            )
        return results

    async def replicated(self, results: Sequence[MutationResult], seconds: float) -> bool:
        """Wait up to ``seconds`` until another region holds every change of
        ``results`` (write concern ``replicated``); whether one does."""
        positions = [
            (r.origin, r.seq)
            for r in results
            if r.status != "rejected" and r.origin is not None and r.seq is not None
        ]
        if self.region is None:
            return not positions
        return await self.region.wait_held_elsewhere(positions, seconds)
