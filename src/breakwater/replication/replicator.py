"""One peer's replicator: pull its feed from a durable cursor, apply, repeat (the next pull
travels while a page is applied, ADR 0047).

Exactly one node of a region replicates from a given peer: it holds a lease row in the store,
renewed every second, which another node takes over once it has not been renewed for
``lease_ttl`` seconds (a killed holder is replaced within seconds). Each page is applied in one
transaction together with the new cursor, so a crash never skips nor applies a page twice (a
page applied again is skipped entry by entry anyway). Failures are retried with exponential
backoff and full jitter, behind a circuit breaker per peer; the loop runs as a task of its own
and never holds up local reads or writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from breakwater.core.cursor import VersionVector
from breakwater.core.engine import StoredDoc
from breakwater.core.errors import BreakwaterError
from breakwater.core.topology import Peer, Topology
from breakwater.replication.anti_entropy import RoundReport, run_round
from breakwater.replication.client import PeerClient, Pulled, PullFailed
from breakwater.replication.wire import Position, ReplicaPage
from breakwater.resilience.backoff import Backoff
from breakwater.resilience.circuit_breaker import CircuitBreaker
from breakwater.storage.base import DocSummaries, FeedEntry, Repair, ReplicaApplied

RENEW_INTERVAL = 1.0
SLOW_RETRY = 30.0
"""Seconds between tries when waiting cannot help soon (a refused key)."""


def peer_key(name: str) -> str:
    """The replication-state key of peer ``name``'s progress row."""
    return f"peer:{name}"


class ReplicationTarget(Protocol):
    """Where replicated pages go: the node's application layer over its store."""

    async def apply_replicated(
        self,
        entries: Sequence[FeedEntry],
        progress: Mapping[str, object] | None = None,
        traces: Mapping[str, Sequence[Position]] | None = None,
    ) -> ReplicaApplied:
        """Apply a page and write ``progress`` in the same transaction; ``traces``: the page's
        origin writes, for tracing (docs/adr/0041)."""

    async def replication_state(self) -> dict[str, Any]:
        """Every replication bookkeeping value by key."""

    async def put_replication_state(
        self, writes: Mapping[str, object], *, only_new: bool = False
    ) -> None:
        """Write bookkeeping values durably."""

    async def take_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew a lease."""

    async def head(self) -> VersionVector:
        """This region's committed head."""

    async def doc_summaries(self, collection: str | None = None) -> DocSummaries:
        """Every local document's summary and the head, in one snapshot (anti-entropy)."""

    async def apply_repairs(self, repairs: Sequence[Repair]) -> list[StoredDoc]:
        """Apply anti-entropy repairs at new local positions; the documents that changed."""


class Observer(Protocol):
    """What the replicator reports (metrics and logs live above this module)."""

    def pulled(self, peer: str, pulled: Pulled, applied: ReplicaApplied, lag: int) -> None:
        """A page was pulled and applied; ``lag`` changes remain behind the peer's head."""

    def failed(self, peer: str, failure: Exception) -> None:
        """A pull or an apply failed, or the loop met a bug (it is retried)."""

    def breaker(self, peer: str, state: str) -> None:
        """The breaker towards ``peer`` is now in ``state``."""

    def transfer(self, peer: str, progress: TransferProgress) -> None:
        """A page of a full state transfer from ``peer`` was applied."""

    def anti_entropy(self, peer: str, report: RoundReport) -> None:
        """An anti-entropy round with ``peer`` ended."""


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """How far a full state transfer from a peer is (it resumes from ``cursor`` after a crash)."""

    changes: int
    """Changes received so far (applied or already held)."""
    applied: int
    covered: int
    """Positions of the peer's head the transfer's cursor covers (compacted ones included)."""
    total: int
    """Positions in the peer's head: what ``covered`` reaches when the transfer ends."""
    seconds: float
    done: bool
    page: int = 0
    """Changes of the page just applied."""

    @property
    def rate(self) -> float:
        """Changes received per second."""
        return self.changes / self.seconds if self.seconds > 0 else 0.0

    def dump(self, cursor: VersionVector, started_ms: int) -> dict[str, Any]:
        """The row's ``transfer`` value, from which a restarted replicator resumes."""
        return {
            "cursor": cursor,
            "changes": self.changes,
            "applied": self.applied,
            "started_ms": started_ms,
        }


@dataclass
class PeerStatus:
    """What this node knows of its replication from one peer (for readyz and the admin view)."""

    name: str
    holding_lease: bool = False
    breaker: str = "closed"
    last_error: str = ""
    needs_full_transfer: bool = False
    transfer: TransferProgress | None = None
    anti_entropy_at: float | None = None
    """Wall-clock time the last anti-entropy round with the peer ended."""
    repairs: int = 0
    caught_up_at: float | None = None
    """Wall-clock time the last page that reached the peer's head was applied."""
    lag_changes: int = 0
    pulls: int = 0
    applied: int = 0
    bytes_in: int = 0
    """Page bytes pulled from the peer as they crossed the wire (compressed), by this node."""

    def lag_seconds(self, now: float) -> float | None:
        """Seconds since this region last held all the peer held (None: never)."""
        return None if self.caught_up_at is None else max(0.0, now - self.caught_up_at)


def _covered(vector: Mapping[str, int], head: Mapping[str, int]) -> int:
    return sum(min(vector.get(origin, 0), seq) for origin, seq in head.items())


async def _drop(pull: asyncio.Task[Pulled] | None) -> None:
    """Cancel a pull sent ahead and wait for it to end; its answer or failure no longer counts."""
    if pull is None:
        return
    pull.cancel()
    with contextlib.suppress(asyncio.CancelledError, PullFailed):
        await pull


def _lag(peer_head: Mapping[str, int], local_head: Mapping[str, int]) -> int:
    return sum(max(0, seq - local_head.get(origin, 0)) for origin, seq in peer_head.items())


class PeerReplicator:
    """The replicator of one peer region, on one node (active while it holds the lease)."""

    def __init__(
        self,
        peer: Peer,
        topology: Topology,
        holder: str,
        target: ReplicationTarget,
        observer: Observer,
        client: PeerClient,
        *,
        wall: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        retention_ms: int = 30 * 86_400_000,
    ) -> None:
        self.peer = peer
        self.topology = topology
        self.holder = holder
        self.target = target
        self.observer = observer
        self.client = client
        self.status = PeerStatus(peer.name)
        self._wall = wall
        self._backoff = backoff or Backoff(base=0.2, cap=10.0)
        self._breaker = breaker or CircuitBreaker(failure_threshold=3, reset_timeout=5.0)
        self._nudged = asyncio.Event()
        self.retention_ms = retention_ms
        """The retention horizon: a document older than it may have had its delete purged."""

    def nudge(self) -> None:
        """The peer is evidently up (it just pulled from this region): end any backoff or open
        breaker's wait and try it now."""
        if self.status.breaker != "closed" or self.status.last_error:
            self._breaker.probe_now()
            self._nudged.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when :meth:`nudge` says the peer is back."""
        self._nudged.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudged.wait(), seconds)

    async def run_forever(self) -> None:
        """Hold the lease when it is free and replicate while holding it."""
        while True:
            try:
                held = await self._take_lease()
            except BreakwaterError:
                held = False
            if not held:
                await asyncio.sleep(RENEW_INTERVAL)
                continue
            self.status.holding_lease = True
            work = asyncio.create_task(self._replicate())
            keep = asyncio.create_task(self._keep_lease())
            try:
                await asyncio.wait({work, keep}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.status.holding_lease = False
                for task in (work, keep):
                    task.cancel()
                for task in (work, keep):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if work.done() and not work.cancelled() and (bug := work.exception()) is not None:
                assert isinstance(bug, Exception)
                self.observer.failed(self.peer.name, bug)
                await asyncio.sleep(RENEW_INTERVAL)  # do not spin on a bug

    async def _take_lease(self) -> bool:
        ttl_ms = int(self.topology.lease_ttl * 1000)
        return await self.target.take_lease(self.peer.name, self.holder, ttl_ms)

    async def _keep_lease(self) -> None:
        """Renew every second; return when the lease is lost (or cannot be renewed)."""
        while True:
            await asyncio.sleep(RENEW_INTERVAL)
            try:
                if not await self._take_lease():
                    return
            except BreakwaterError:
                return

    async def _replicate(self) -> None:
        """Follow the peer's feed, each page applied in order with the cursor it ends at. Once
        the peer's pages say ``accepts_held``, the next pull leaves as soon as a page arrives,
        from that page's end with the durable cursor as ``held``, and travels while the page
        is applied (ADR 0047); a failed pull or apply drops the pull in flight, and the next
        one starts from the durable cursor."""
        row = (await self.target.replication_state()).get(peer_key(self.peer.name), {})
        vector: VersionVector = dict(row.get("cursor", {}))
        caught_up = row.get("caught_up")
        wait = 0.0
        ahead: asyncio.Task[Pulled] | None = None
        try:
            while True:
                if row.get("needs_full_transfer"):
                    row = await self._transfer(row)
                    vector, caught_up, wait = dict(row["cursor"]), row.get("caught_up"), 0.0
                    await self._anti_entropy()  # finds what the peer deleted and purged
                    continue
                if ahead is None and not self._breaker.allow():
                    self._set_breaker()
                    await self._pause(max(self._breaker.retry_in(), 0.05))
                    continue
                try:
                    if ahead is None:
                        pulled = await self.client.pull(vector, self.topology.pull_limit, wait)
                    else:
                        pulled = await ahead
                except PullFailed as failure:
                    ahead = None
                    if failure.kind == "expired":
                        row = await self._expired(failure, row)
                    else:
                        await self._failed(failure)
                    continue
                self._answered()
                page = pulled.page
                ahead = self._pull_ahead(page, vector) if page.accepts_held else None
                if not page.has_more:
                    caught_up = page.head  # this page brings everything the peer held
                row = self._row(page, caught_up, row)
                try:
                    applied = await self.target.apply_replicated(
                        page.entries, {peer_key(self.peer.name): row}, page.traces
                    )
                    local = await self.target.head()
                except BreakwaterError as error:
                    await _drop(ahead)
                    ahead = None
                    await self._apply_failed(error)
                    continue
                self._succeeded()
                vector = page.vector
                status = self.status
                status.pulls += 1
                status.applied += applied.applied
                status.bytes_in += pulled.wire_bytes
                status.lag_changes = _lag(page.head, local)
                status.needs_full_transfer = False
                if not page.has_more:
                    status.caught_up_at = self._wall()
                self.observer.pulled(self.peer.name, pulled, applied, status.lag_changes)
                wait = 0.0 if page.has_more else self.topology.pull_wait
                if not page.has_more and self._anti_entropy_due():
                    await self._anti_entropy()
        finally:
            await _drop(ahead)

    def _pull_ahead(self, page: ReplicaPage, held: VersionVector) -> asyncio.Task[Pulled]:
        """The pull after ``page``, sent before ``page`` is applied. A page that brought
        changes is followed by one that does not wait, so the peer learns promptly that they
        are held (``stable``, write concern ``replicated``); a long-poll follows an empty page,
        whose ``held`` is then the whole durable cursor."""
        wait = 0.0 if page.entries or page.has_more else self.topology.pull_wait
        pull = self.client.pull(page.vector, self.topology.pull_limit, wait, held=held)
        return asyncio.create_task(pull)

    def _row(
        self, page: ReplicaPage, caught_up: Any, previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The progress row written with a page (the peer's webhook progress kept when the
        page does not tell it)."""
        return {
            "cursor": page.vector,
            "caught_up": caught_up,
            "state": page.state,
            "origin": page.origin,
            "regions": list(page.regions),
            "stable": page.stable,
            "head": page.head,
            "needs_full_transfer": False,
            "updated_ms": int(self._wall() * 1000),
            "webhooks": previous.get("webhooks", {}) if page.webhooks is None else page.webhooks,
        }

    def _answered(self) -> None:
        """The peer answered: it is up, whatever becomes of its page here (an apply that
        fails is this region's trouble, and must not leave a probe's outcome unrecorded)."""
        self._breaker.record_success()
        self._set_breaker()

    def _succeeded(self) -> None:
        self._backoff.reset()
        self.status.last_error = ""

    async def _apply_failed(self, error: BreakwaterError) -> None:
        self.observer.failed(self.peer.name, error)
        self.status.last_error = f"{error.type}: {error.detail}"
        await self._pause(self._backoff.next_delay())

    # full state transfer (docs/adr/0032-state-transfer-and-anti-entropy.md) ---------------------

    async def _expired(self, failure: PullFailed, row: Mapping[str, Any]) -> dict[str, Any]:
        """Past the peer's retention horizon: only a full state transfer can catch up."""
        self._answered()  # the peer is up (a half-open probe ends)
        self.observer.failed(self.peer.name, failure)
        self.status.last_error = f"{failure.kind}: {failure.detail}"
        self.status.needs_full_transfer = True
        marked = {**row, "needs_full_transfer": True}
        try:
            await self.target.put_replication_state({peer_key(self.peer.name): marked})
        except BreakwaterError as error:
            await self._apply_failed(error)
        return marked

    async def _transfer(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Pull the peer's whole retained feed from the empty cursor (always valid), with full
        states: every live document and retained tombstone at its position. Each page is
        applied with the transfer's cursor, so a restarted replicator resumes where it was.
        Returns the progress row to follow the feed from."""
        saved = row.get("transfer") or {}
        vector: VersionVector = dict(saved.get("cursor", {}))
        changes, applied = int(saved.get("changes", 0)), int(saved.get("applied", 0))
        started_ms = int(saved.get("started_ms", self._wall() * 1000))
        key = peer_key(self.peer.name)
        while True:
            if not self._breaker.allow():
                self._set_breaker()
                await self._pause(max(self._breaker.retry_in(), 0.05))
                continue
            try:
                pulled = await self.client.pull(
                    vector, self.topology.pull_limit, 0.0, transfer=True
                )
            except PullFailed as failure:
                if failure.kind == "expired":  # the peer compacted past the transfer: restart
                    vector, changes, applied = {}, 0, 0
                    self._answered()
                    self.observer.failed(self.peer.name, failure)
                else:
                    await self._failed(failure)
                continue
            self._answered()
            page = pulled.page
            done = not page.has_more
            seconds = max(0.0, self._wall() - started_ms / 1000)
            progress = TransferProgress(
                changes + len(page.entries),
                applied,
                _covered(page.vector, page.head),
                sum(page.head.values()),
                seconds,
                done,
            )
            if done:
                next_row = self._row(page, page.head, row)
            else:
                next_row = {
                    **row,
                    "needs_full_transfer": True,
                    "transfer": progress.dump(page.vector, started_ms),
                }
            try:
                result = await self.target.apply_replicated(page.entries, {key: next_row})
            except BreakwaterError as error:
                await self._apply_failed(error)
                continue
            self._succeeded()
            vector, changes = page.vector, progress.changes
            applied += result.applied
            progress = TransferProgress(
                changes, applied, progress.covered, progress.total, seconds, done, len(page.entries)
            )
            self.status.transfer = progress
            self.status.applied += result.applied
            self.status.bytes_in += pulled.wire_bytes
            self.observer.transfer(self.peer.name, progress)
            if done:
                self.status.needs_full_transfer = False
                self.status.caught_up_at = self._wall()
                return next_row

    # anti-entropy (docs/adr/0032-state-transfer-and-anti-entropy.md) ----------------------------

    def _anti_entropy_due(self) -> bool:
        interval = self.topology.anti_entropy_interval
        if interval <= 0:
            return False
        last = self.status.anti_entropy_at
        if last is None:  # the first round comes one interval after the lease was taken
            self.status.anti_entropy_at = last = self._wall()
        return self._wall() - last >= interval

    async def _anti_entropy(self) -> RoundReport | None:
        """One round with the peer; its failures are reported and retried next interval."""
        try:
            report = await self.anti_entropy_round()
        except (PullFailed, BreakwaterError) as failure:
            self.observer.failed(self.peer.name, failure)
            return None
        finally:
            self.status.anti_entropy_at = self._wall()
        return report

    async def anti_entropy_round(self) -> RoundReport:
        """Compare digests with the peer and repair what differs here."""
        cutoff_ms = int(self._wall() * 1000) - self.retention_ms
        report = await run_round(
            self.peer.name,
            self.client,
            self.target,
            buckets=self.topology.anti_entropy_buckets,
            purge_cutoff_ms=cutoff_ms,
        )
        self.status.repairs += report.repairs
        self.observer.anti_entropy(self.peer.name, report)
        return report

    async def _failed(self, failure: PullFailed) -> None:
        self.observer.failed(self.peer.name, failure)
        self.status.last_error = f"{failure.kind}: {failure.detail}"
        self._breaker.record_failure()
        self._set_breaker()
        if failure.kind == "refused":
            await asyncio.sleep(SLOW_RETRY)
            return
        await self._pause(self._backoff.next_delay())

    def _set_breaker(self) -> None:
        state = self._breaker.state
        if state != self.status.breaker:
            self.status.breaker = state
            self.observer.breaker(self.peer.name, state)
