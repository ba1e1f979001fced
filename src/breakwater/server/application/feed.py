"""The feed follower: the one reader of a node's committed changes, and what it tells consumers.

When the bus announces a commit (or, for writers the bus does not reach, when a once-a-second
poll of the store's head finds one), the follower pulls the new changes from the store once, page
by page, in feed order, and hands each page to its consumers in the order they subscribed: the
read cache first (so that a realtime client told of a change reads at least that version from
this node), then the realtime fan-out; replication and webhooks are meant to join them. Long-polls
wait here for the position to move, and compaction tells the follower how far the store forgot.

Only while a consumer wants the changes themselves (a realtime subscriber, a read cache to keep
fresh, files to copy) are they read: otherwise the follower moves to the announced head without
reading and restarts its consumers there. In a node of several workers every worker hears of
every worker's commits, and reading them all for nobody took 11-22 % of each worker's event loop
(ADR 0061). Each consumer is asked about the changes between the position and the new head: the
read cache needs none of those this node committed and invalidated itself (ADR 0065). Because a
skip reads no further than the announced head, the store's head is looked at once a second
even while notices keep coming, so that the commits of writers the bus does not reach (or whose
notices were lost) are met within that second.

A consumer is awaited page by page; a consumer that does not await while it takes a page sees the
follower's position move in one step with it (the fan-out's switch of subscribers to live relies
on that). Everything here runs on the node's event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from breakwater.bus import Bus, CommitNotice, Subscription
from breakwater.core import cursor as cursor_mod
from breakwater.core.cursor import VersionVector, covers_all
from breakwater.core.errors import BreakwaterError, CursorExpired
from breakwater.obs.logging import get_logger
from breakwater.storage.base import FeedPage, Store

_log = get_logger("breakwater.feed")
PAGE_SIZE = 500
POLL_INTERVAL = 1.0


class FeedConsumer(Protocol):
    """What the follower tells each of its subscribers."""

    def wants_changes(self, since: VersionVector, head: VersionVector) -> bool:
        """True if it needs the changes past ``since`` up to ``head`` delivered; else a restart
        at the new position will do (and the follower may not read them)."""

    def restart(self, head: VersionVector) -> None:
        """The follower starts at ``head``: nothing before it will be delivered.

        Called when it first reads the store's head, again when its position fell behind the
        retention horizon, and at each new head while no consumer wants the changes (the
        changes in between are never delivered).
        """

    async def deliver(self, page: FeedPage, at: float) -> None:
        """The next page of committed changes, right after the previous one.

        ``at`` is the wall-clock time of the commit that made the follower pull it. An error
        raised here is logged and the page is delivered again to every consumer (consumers
        must take a page twice without harm).
        """


class FeedFollower:
    """Follows the store's change feed from its head and delivers every page to consumers."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        page_size: int = PAGE_SIZE,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.store = store
        self.bus = bus
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.position: VersionVector = {}
        """Where the last delivered page ends."""
        self.low_water: VersionVector = {}
        """How far the store has forgotten changes (retention passes)."""
        self.following = False
        """True once the position is the store's head."""
        self._looked_at = -poll_interval
        """Loop time when the follower last read the store to its end or polled its head."""
        self._consumers: list[FeedConsumer] = []
        self._advanced = asyncio.Event()
        self._stopped = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, consumer: FeedConsumer) -> None:
        """Deliver every page from now on to ``consumer``, after the earlier subscribers."""
        self._consumers.append(consumer)

    async def start(self) -> None:
        """Subscribe to the bus, read the store's head and start following from there.

        A store that cannot answer yet does not stop the start (I8): the follower reads the
        head as soon as it can, and until then consumers are not started.
        """
        notices = self.bus.subscribe(buffer=256)
        try:
            self._start_at(await self.store.head())
        except BreakwaterError as error:
            _log.warning("feed_head_unavailable", error=error.type, detail=error.detail)
        self._closing = False
        self._task = asyncio.create_task(self._follow(notices), name="bw-feed-follower")

    async def aclose(self) -> None:
        """Stop following and release every waiter."""
        self.stop_waiters()
        self._closing = True
        # Python 3.11's wait_for can swallow a cancellation that lands as its inner wait
        # finishes (so waits here use asyncio.timeout); should one still be lost, the flag ends
        # the loop, and the cancel is repeated until it is done.
        while self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
        self._task = None

    def forget_before(self, low_water: VersionVector) -> None:
        """The store removed changes up to ``low_water`` (a retention pass)."""
        self.low_water = cursor_mod.merge(self.low_water, low_water)

    def _start_at(self, head: VersionVector) -> None:
        self._looked_at = asyncio.get_running_loop().time()
        self.position = head
        self.following = True
        for consumer in self._consumers:
            consumer.restart(dict(head))

    async def _follow(self, notices: Subscription) -> None:
        try:
            while not self._closing:
                try:
                    if not self.following:
                        self._start_at(await self.store.head())
                    commit = await self._next_commit(notices)
                    if commit is None:
                        continue
                    head, at = commit
                    position = self.position
                    if any(consumer.wants_changes(position, head) for consumer in self._consumers):
                        await self._catch_up(at)
                    else:
                        self._skip_to(head)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    # Degrade, never die (I8): consumers wait, nothing is lost, and the next
                    # notice or poll retries from the same position.
                    _log.warning(
                        "feed_follower_failed", error=type(error).__name__, detail=str(error)
                    )
                    await asyncio.sleep(self.poll_interval)
        finally:
            notices.close()

    async def _next_commit(self, notices: Subscription) -> tuple[VersionVector, float] | None:
        """A head past the position and the time of its commit, or None when nothing is new."""
        loop = asyncio.get_running_loop()
        wait = self._looked_at + self.poll_interval - loop.time()
        notice: CommitNotice | None = None
        if wait > 0:
            try:
                async with asyncio.timeout(wait):
                    notice = await anext(notices)
            except TimeoutError:
                pass
            except StopAsyncIteration:
                await asyncio.sleep(wait)  # the bus is closed: poll only
        if notice is not None:
            return None if covers_all(self.position, notice.head) else (notice.head, notice.at)
        # The store's end not seen for a while: writers in another process (or a bus that lost
        # its broker, or a notice dropped) do not reach us, and skips read nothing past the
        # heads they were told, so look at the store's head.
        head = await self.store.head()
        self._looked_at = loop.time()
        return None if covers_all(self.position, head) else (head, time.time())

    def _skip_to(self, head: VersionVector) -> None:
        """Move to ``head`` without reading the changes before it (nobody wants them).

        A notice's head is committed up to each of its seqs (the store's hook contract), so
        the position stays a gap-free prefix of the feed. Consumers restart there in this
        same step: one that starts wanting changes later gets every change after it.
        """
        self.position = cursor_mod.merge(self.position, head)
        for consumer in self._consumers:
            consumer.restart(dict(self.position))
        self._wake_waiters()

    async def _catch_up(self, at: float) -> None:
        """Deliver every page past the position."""
        while True:
            try:
                page = await self.store.pull(self.position, None, self.page_size, urgent=True)
            except CursorExpired:
                _log.warning("feed_follower_expired", position=self.position)
                self._start_at(await self.store.head())
                return
            for consumer in self._consumers:
                await consumer.deliver(page, at)
            self.position = page.vector
            self._wake_waiters()
            if not page.has_more:
                self._looked_at = asyncio.get_running_loop().time()
                return

    # long-poll ----------------------------------------------------------------------------------

    def _wake_waiters(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    def stop_waiters(self) -> None:
        """Make every long-poll waiting in :meth:`wait_beyond` answer now (draining)."""
        self._stopped = True
        self._wake_waiters()

    async def wait_beyond(self, seen: VersionVector, seconds: float) -> bool:
        """Wait until the feed has a change past ``seen``; False after ``seconds`` or draining."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not any(seq > seen.get(origin, 0) for origin, seq in self.position.items()):
            remaining = deadline - loop.time()
            if self._stopped or remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):  # not wait_for: see aclose
                    await self._advanced.wait()
            except TimeoutError:
                return False
        return True
