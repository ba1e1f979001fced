"""The region's webhook deliverer: a feed consumer that never holds the feed up.

Why the feed is the outbox: every committed change is already durable in the store's feed, in
order, with the document's state. Each subscription keeps a durable cursor into it (the webhook
store); its task pulls the page past the cursor, delivers the page's matching changes (at most
``concurrency`` at a time, each retried with exponential backoff and full jitter, dead-lettered
after ``max_attempts``) and only then saves the cursor past the page. A crash anywhere in between
delivers the page again: at least once, with the same idempotency keys.

Why a consumer of ``node.feed`` at all: only to learn quickly that there is something new.
``deliver`` sets an event and returns, so a slow or dead receiver never slows the follower, the
read cache, realtime or writes; without notices the tasks poll every ``poll_interval``.

One deliverer per region: a node delivers only while it holds the region's lease
``webhooks:<region>`` in the document store (``Store.take_lease``, the lease the replicators
use too), and only changes whose origin is of its own region (``region_of(origin)``): a change
replicated from another region is delivered there. When a peer region is lost, one live region
takes its deliveries over from the progress it last reported (:mod:`.succession`, ADR 0042).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from breakwater.core import hlc
from breakwater.core.cursor import VersionVector
from breakwater.core.errors import BreakwaterError, CursorExpired
from breakwater.core.incarnation import region_of
from breakwater.obs.logging import get_logger
from breakwater.resilience.backoff import Backoff
from breakwater.server.webhooks import payload
from breakwater.server.webhooks.metrics import WebhookMetrics
from breakwater.server.webhooks.records import Attempt, DeadLetter, Subscription
from breakwater.server.webhooks.sender import Sender
from breakwater.server.webhooks.store import WebhookStore
from breakwater.server.webhooks.succession import adopted_regions, rewound
from breakwater.storage.base import FeedEntry, FeedPage, Store

_log = get_logger("breakwater.webhooks")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Bounds of delivery (config keys ``webhook_*``)."""

    timeout: float = 10.0
    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    concurrency: int = 4
    allow_private: bool = False
    poll_interval: float = 1.0
    lease_ttl: float = 15.0
    page_size: int = 100
    log_retention: float = 7 * 86400.0
    """Seconds the delivery log keeps an attempt."""
    takeover_after: float = 60.0
    """Seconds without a replication page after which a peer region counts as lost."""


class Deliverer:
    """Delivers every matching change of this region to every subscription (module docstring)."""

    def __init__(
        self,
        store: WebhookStore,
        feed_store: Store,
        *,
        region: str,
        holder: str,
        policy: DeliveryPolicy,
        metrics: WebhookMetrics,
        sender: Sender | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        peer_rows: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
    ) -> None:
        self.store = store
        self.feed_store = feed_store
        self.region = region
        self.holder = holder
        self.policy = policy
        self.metrics = metrics
        self.sender = sender or Sender(policy.timeout, policy.allow_private)
        self._sleep = sleep
        """The wait between attempts (tests pass one that records and returns at once)."""
        self._rng = rng or random.Random()
        self.lease = f"webhooks:{region}"
        self.leading = False
        self._peer_rows = peer_rows
        """Each peer region's replication row (its last page's time, its reported progress)."""
        self.adopted: dict[str, dict[str, VersionVector]] = {}
        """Lost peer regions whose changes this region delivers, with their reported progress."""
        self._workers: dict[str, tuple[Subscription, asyncio.Task[None]]] = {}
        self._signal = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._opened = False
        self._pruned_ms = 0

    # FeedConsumer: only a wake-up, never a wait -------------------------------------------------

    def wants_changes(self, since: VersionVector, head: VersionVector) -> bool:
        """No: the subscriptions read the feed from their own cursors; a wake-up will do."""
        return False

    def restart(self, head: VersionVector) -> None:
        """The follower (re)started or moved on: look at the feed."""
        self.wake()

    async def deliver(self, page: FeedPage, at: float) -> None:
        """New changes are committed: wake the subscriptions' tasks (returns at once)."""
        self.wake()

    def wake(self) -> None:
        """Look for work now (new changes, a queued redelivery)."""
        self._signal.set()
        self._signal = asyncio.Event()

    # lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the webhook store (in the background if it cannot answer yet) and start leading."""
        try:
            await self.store.open()
            self._opened = True
        except BreakwaterError as error:
            _log.warning("webhook_store_unavailable", error=error.type, detail=error.detail)
        self._task = asyncio.create_task(self._lead(), name="bw-webhooks")

    async def aclose(self) -> None:
        """Stop delivering and give the lease up; the cursors say where the next holder resumes."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._stop_workers()
        if self.leading:
            try:  # a lease that ends now: another node takes over at once
                await self.feed_store.take_lease(self.lease, self.holder, 0)
            except BreakwaterError as error:
                _log.warning("webhook_lease_release_failed", error=error.type)
            self.leading = False
            self.metrics.leader.set(0)
        await self.sender.aclose()
        await self.store.aclose()

    async def _lead(self) -> None:
        renew = min(self.policy.poll_interval, self.policy.lease_ttl / 3)
        while True:
            try:
                if not self._opened:
                    await self.store.open()
                    self._opened = True
                ttl_ms = int(self.policy.lease_ttl * 1000)
                leading = await self.feed_store.take_lease(self.lease, self.holder, ttl_ms)
                if leading != self.leading:
                    _log.info("webhook_deliverer", leading=leading, holder=self.holder)
                self.leading = leading
                self.metrics.leader.set(int(leading))
                if leading:
                    await self._follow_successions()
                    await self._sync_workers()
                    await self._forget_old_attempts(int(time.time() * 1000))
                else:
                    self.adopted = {}
                    await self._stop_workers()
            except asyncio.CancelledError:
                raise
            except BreakwaterError as error:
                # Degrade, never die (I8): without the store nobody can renew, so stop too.
                _log.warning("webhook_lease_failed", error=error.type, detail=error.detail)
                self.leading = False
                self.adopted = {}
                self.metrics.leader.set(0)
                await self._stop_workers()
            await asyncio.sleep(renew)

    async def _follow_successions(self) -> None:
        """Take over the deliveries of peer regions just found lost (rewinding each
        subscription's cursor over their origins to what they reported), and give back those
        that are heard from again (they resume from their own cursors)."""
        adopted = adopted_regions(
            self.region,
            self._peer_rows(),
            int(time.time() * 1000),
            int(self.policy.takeover_after * 1000),
        )
        new = {name: reported for name, reported in adopted.items() if name not in self.adopted}
        for name in set(self.adopted) - set(adopted):
            _log.warning("webhook_takeover_ended", region=name)
        if new:
            await self._stop_workers()  # no task may save a cursor over the rewound one
            for subscription in await self.store.subscriptions():
                sub_id = subscription.sub_id
                cursor = await self.store.cursor(sub_id)
                if cursor is None:
                    continue
                moved = cursor
                for name, reported in new.items():
                    if sub_id in reported:
                        moved = rewound(moved, name, reported[sub_id])
                    else:
                        _log.warning(
                            "webhook_takeover_unreported", region=name, subscription=sub_id
                        )
                if moved != cursor:
                    await self.store.save_cursor(sub_id, moved)
            for name in new:
                _log.warning("webhook_takeover", region=name, by=self.region)
        self.adopted = adopted

    async def progress(self) -> dict[str, VersionVector] | None:
        """Per subscription, how far this region delivered its own origins' changes (for the
        peers' pulls); ``None`` when the webhook store cannot tell now."""
        if not self._opened:
            return None
        try:
            cursors = await self.store.cursors()
        except BreakwaterError:
            return None
        return {
            sub_id: {o: seq for o, seq in cursor.items() if region_of(o) == self.region}
            for sub_id, cursor in cursors.items()
        }

    async def _forget_old_attempts(self, now_ms: int) -> None:
        """Trim the delivery log at most once an hour (the log is bounded in time)."""
        if now_ms - self._pruned_ms < 3_600_000:
            return
        self._pruned_ms = now_ms
        await self.store.forget_attempts(now_ms - int(self.policy.log_retention * 1000))

    async def _sync_workers(self) -> None:
        """One task per subscription: start new ones, restart changed ones, stop removed ones."""
        current = {s.sub_id: s for s in await self.store.subscriptions()}
        for sub_id, (running, task) in list(self._workers.items()):
            if current.get(sub_id) != running:
                del self._workers[sub_id]
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                if sub_id not in current:
                    self.metrics.forget(sub_id)
        for sub_id, subscription in current.items():
            if sub_id not in self._workers:
                task = asyncio.create_task(self._work(subscription), name=f"bw-webhook-{sub_id}")
                self._workers[sub_id] = (subscription, task)

    async def _stop_workers(self) -> None:
        tasks = [task for _, task in self._workers.values()]
        self._workers = {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # one subscription ---------------------------------------------------------------------------

    async def _work(self, subscription: Subscription) -> None:
        while True:
            signal = self._signal  # taken before the pull: a wake-up during it is not lost
            try:
                await self._redeliver_queued(subscription)
                moved = await self._one_page(subscription)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                _log.warning(
                    "webhook_page_failed",
                    subscription=subscription.sub_id,
                    error=type(error).__name__,
                    detail=str(error) if isinstance(error, BreakwaterError) else "",
                )
                await asyncio.sleep(self.policy.poll_interval)
                continue
            if not moved:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal.wait(), self.policy.poll_interval)

    async def _one_page(self, subscription: Subscription) -> bool:
        """Deliver the page past the cursor and save the cursor past it; True if it moved."""
        sub_id = subscription.sub_id
        cursor = await self.store.cursor(sub_id)
        if cursor is None:  # created without a position (the CLI): start at the head
            await self.store.save_cursor(sub_id, await self.feed_store.head())
            return True
        try:
            page = await self.feed_store.pull(
                cursor, list(subscription.collections) or None, self.policy.page_size
            )
        except CursorExpired:
            head = await self.feed_store.head()
            _log.error("webhook_gap", subscription=sub_id, cursor=cursor, head=head)
            self.metrics.gaps.inc()
            await self.store.save_cursor(sub_id, head)
            return True
        todo = [entry for entry in page.entries if self._ours(subscription, entry)]
        self._observe_backlog(sub_id, todo)
        limit = asyncio.Semaphore(self.policy.concurrency)
        log: list[Attempt] = []
        await asyncio.gather(*(self._deliver_change(subscription, e, limit, log) for e in todo))
        await self.store.log(log)  # one commit for the page's successful attempts
        self.metrics.lag.labels(sub_id).set(0)
        if page.vector == cursor:
            return False
        await self.store.save_cursor(sub_id, page.vector)
        return True

    def _ours(self, subscription: Subscription, entry: FeedEntry) -> bool:
        change = entry.change
        origin_region = region_of(change.origin)
        return (
            origin_region == self.region or origin_region in self.adopted
        ) and subscription.wants(change.collection, change.op)

    def _observe_backlog(self, sub_id: str, todo: list[FeedEntry]) -> None:
        self.metrics.pending.labels(sub_id).set(len(todo))
        if todo:
            oldest_ms = hlc.decode(todo[0].change.hlc).wall_ms
            self.metrics.lag.labels(sub_id).set(max(0.0, time.time() - oldest_ms / 1000))

    async def _deliver_change(
        self,
        subscription: Subscription,
        entry: FeedEntry,
        limit: asyncio.Semaphore,
        log: list[Attempt],
    ) -> None:
        delivery_id, body = payload.event(subscription.sub_id, entry)
        async with limit:
            attempts = await self._attempt_all(subscription, delivery_id, body, log)
        if attempts is not None:
            await self._bury(subscription, delivery_id, body, attempts)
        self.metrics.pending.labels(subscription.sub_id).dec()

    async def _attempt_all(
        self, subscription: Subscription, delivery_id: str, body: bytes, log: list[Attempt]
    ) -> tuple[int, str] | None:
        """Try up to ``max_attempts`` times; None once delivered, else (attempts, last error).

        Each attempt is added to ``log``, which the caller writes when its page is done; a
        failure writes it at once, so that admins see a failing receiver while it retries.
        """
        error = ""
        waits = Backoff(self.policy.backoff_base, self.policy.backoff_cap, self._rng.random)
        for attempt in range(1, self.policy.max_attempts + 1):
            answer = await self.sender.send(subscription, delivery_id, body, attempt)
            self.metrics.attempts.labels(answer.outcome).inc()
            if answer.outcome != "refused":
                self.metrics.latency.observe(answer.latency_ms / 1000)
            log.append(
                Attempt(
                    subscription.sub_id,
                    delivery_id,
                    attempt,
                    answer.outcome,
                    answer.status,
                    answer.latency_ms,
                    answer.error,
                    int(time.time() * 1000),
                )
            )
            if answer.outcome == "delivered":
                return None
            error = answer.error
            written = log[:]
            del log[:]
            await self.store.log(written)
            if attempt < self.policy.max_attempts:
                await self._sleep(waits.next_delay())
        return self.policy.max_attempts, error

    async def _bury(
        self, subscription: Subscription, delivery_id: str, body: bytes, failed: tuple[int, str]
    ) -> None:
        attempts, error = failed
        await self.store.add_dead_letter(
            DeadLetter(
                subscription.sub_id, delivery_id, body, attempts, error, int(time.time() * 1000)
            )
        )
        self.metrics.dead_letters.inc()
        _log.warning("webhook_dead_letter", subscription=subscription.sub_id, delivery=delivery_id)

    async def _redeliver_queued(self, subscription: Subscription) -> None:
        """Send the dead letters an admin asked to redeliver (with their original body and key)."""
        letters = await self.store.dead_letters(
            subscription.sub_id, self.policy.page_size, state="queued"
        )
        for letter in letters:
            log: list[Attempt] = []
            failed = await self._attempt_all(subscription, letter.delivery_id, letter.payload, log)
            await self.store.log(log)
            if failed is None:
                await self.store.mark_letter(subscription.sub_id, letter.delivery_id, "redelivered")
            else:
                await self._bury(subscription, letter.delivery_id, letter.payload, failed)
