"""Fan-out of the change feed to every realtime subscriber of a node, gap-free (I5).

One *follower* task per node keeps a shared ``position`` in the feed. When the bus announces a
commit (or, for writers the bus does not reach, when a once-a-second poll of the store's head
finds one), it pulls the new changes from the store once, page by page, and hands each page to
every *live* subscriber through that subscriber's bounded queue. A page is encoded once per
collection filter, so a thousand subscribers of one filter share one message text.

A subscriber starts in *replay* mode: its connection pulls from the store from its own cursor
with its own pulls (:meth:`Fanout.replay`). Right after a pull that reached the end of the feed
returns, in the same step of the event loop, the subscriber is switched to live if its cursor
covers the shared position. The follower moves the position in a single step too, so no page
can slip between the two: every change the replay did not cover is in a later page, and a page
change the replay already delivered is dropped (its ``(origin, seq)`` is covered by the
subscriber's cursor). This is "subscribe first, replay, then drop what the replay sent" without
buffering during the replay, so a long replay holds no memory.

When a live subscriber's queue would exceed ``queue_limit`` changes (a slow consumer), its queue
is dropped and it goes back to replay mode from the cursor of the last message its connection
took: it loses nothing and catches up through the feed, and the node holds at most
``queue_limit`` changes for it.

Everything here runs on one event loop; nothing is shared across threads.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from breakwater.bus import Bus, CommitNotice, Subscription
from breakwater.core import cursor as cursor_mod
from breakwater.core.cursor import VersionVector
from breakwater.core.errors import CursorExpired
from breakwater.obs.logging import get_logger
from breakwater.obs.metrics import Metrics
from breakwater.server.realtime import messages
from breakwater.storage.base import FeedEntry, FeedPage, Store

_log = get_logger("breakwater.realtime")
PAGE_SIZE = 500
MAX_MESSAGE_BYTES = 256 * 1024
POLL_INTERVAL = 1.0


def covers_all(vector: Mapping[str, int], other: Mapping[str, int]) -> bool:
    """True when ``vector`` covers every change that ``other`` covers."""
    return all(vector.get(origin, 0) >= seq for origin, seq in other.items())


def same_position(left: Mapping[str, int], right: Mapping[str, int]) -> bool:
    """True when two vectors cover exactly the same changes (zero entries ignored)."""
    return covers_all(left, right) and covers_all(right, left)


@dataclass(slots=True, eq=False)
class Batch:
    """One ``changes`` message, ready to send, and the cursor the client holds after it."""

    text: str
    cursor: VersionVector
    cursor_text: str
    changes: int
    at: float | None
    """Wall-clock time of the commit that made it live (None for replayed messages)."""
    sse: bytes | None = None
    """The message framed as an SSE event, built by the first SSE connection that sends it."""


class Subscriber:
    """One connection's subscription: its filter, its position and its bounded queue."""

    __slots__ = (
        "aligned",
        "closed",
        "collections",
        "cursor",
        "live",
        "queue",
        "queued",
        "resume_from",
        "wakeup",
    )

    def __init__(
        self,
        collections: frozenset[str] | None,
        cursor: VersionVector,
        wakeup: asyncio.Event,
    ) -> None:
        self.collections = collections
        self.resume_from: VersionVector = dict(cursor)
        """Where a replay starts: the cursor of the last message the connection took."""
        self.cursor: VersionVector = {}
        """The position of a live subscriber that is not aligned with the shared position."""
        self.live = False
        self.aligned = False
        self.closed = False
        self.queue: deque[Batch] = deque()
        self.queued = 0
        self.wakeup = wakeup

    def take(self) -> Batch | None:
        """The next queued message, if any; its cursor becomes the replay point."""
        if not self.queue:
            return None
        batch = self.queue.popleft()
        self.queued -= batch.changes
        self.resume_from = batch.cursor
        return batch

    def matches(self, entry: FeedEntry) -> bool:
        """True when ``entry`` is in one of the subscribed collections."""
        return self.collections is None or entry.change.collection in self.collections

    @property
    def store_filter(self) -> list[str] | None:
        """The collection filter as the store takes it."""
        return None if self.collections is None else sorted(self.collections)


def _advance(vector: VersionVector, entries: Iterable[FeedEntry]) -> VersionVector:
    return cursor_mod.advance(vector, ((e.change.origin, e.change.seq) for e in entries))


def build_batches(
    entries: Sequence[FeedEntry],
    encoded: Sequence[bytes],
    indexes: Sequence[int],
    start: VersionVector,
    end: VersionVector,
    stable: VersionVector,
    at: float | None,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> list[Batch]:
    """Messages carrying ``entries[i]`` for ``i`` in ``indexes``, split at ``max_bytes``.

    Every message but the last carries the cursor ``start`` advanced past its changes; the last
    carries ``end`` (which may also cover changes the subscriber's filter skipped). With no
    index, one empty message carries ``end``.
    """
    batches: list[Batch] = []
    vector = start
    chunk: list[int] = []
    size = 0

    def emit(chunk: list[int], cursor: VersionVector) -> None:
        text = cursor_mod.encode(cursor)
        body = messages.changes([encoded[i] for i in chunk], text, stable)
        batches.append(Batch(body, cursor, text, len(chunk), at))

    for index in indexes:
        length = len(encoded[index])
        if chunk and size + length > max_bytes:
            vector = _advance(vector, (entries[i] for i in chunk))
            emit(chunk, vector)
            chunk, size = [], 0
        chunk.append(index)
        size += length
    emit(chunk, end)
    return batches


class Fanout:
    """The follower, the shared position and the live subscribers of one node."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        metrics: Metrics,
        *,
        queue_limit: int,
        poll_interval: float = POLL_INTERVAL,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self.queue_limit = queue_limit
        self.page_size = min(PAGE_SIZE, queue_limit)
        self.poll_interval = poll_interval
        self.max_message_bytes = max_message_bytes
        self.position: VersionVector = {}
        self.stable: VersionVector = {}
        self._groups: dict[frozenset[str] | None, set[Subscriber]] = {}
        self._unaligned: set[Subscriber] = set()
        self._advanced = asyncio.Event()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    # lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the bus, read the store's head and start following from there."""
        notices = self.bus.subscribe(buffer=256)
        try:
            self.position = await self.store.head()
        except Exception:
            notices.close()
            raise
        self.stable = dict(self.position)
        self._task = asyncio.create_task(self._follow(notices), name="bw-realtime-follower")

    async def aclose(self) -> None:
        """Stop the follower and release every waiter."""
        self.stop_waiters()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def stop_waiters(self) -> None:
        """Make every long-poll waiting in :meth:`wait_beyond` answer now (draining)."""
        self._stopped = True
        self._wake_waiters()

    # subscribers --------------------------------------------------------------------------------

    def remove(self, sub: Subscriber) -> None:
        """Forget ``sub`` (its connection ended or it unsubscribed)."""
        sub.closed = True
        self._detach(sub)
        sub.live = False
        sub.queue.clear()
        sub.queued = 0

    def cursor_of(self, sub: Subscriber) -> VersionVector:
        """Where a live subscriber stands once its queue is sent."""
        return dict(self.position) if sub.aligned else dict(sub.cursor)

    def _detach(self, sub: Subscriber) -> None:
        if sub.aligned:
            group = self._groups.get(sub.collections)
            if group is not None:
                group.discard(sub)
                if not group:
                    del self._groups[sub.collections]
        else:
            self._unaligned.discard(sub)
        sub.aligned = False

    def _attach(self, sub: Subscriber, cursor: VersionVector) -> None:
        """Make ``sub`` live at ``cursor`` (which covers the shared position)."""
        sub.live = True
        if same_position(cursor, self.position):
            sub.aligned = True
            self._groups.setdefault(sub.collections, set()).add(sub)
        else:
            sub.aligned = False
            sub.cursor = dict(cursor)
            self._unaligned.add(sub)

    async def replay(self, sub: Subscriber) -> list[Batch]:
        """One page of ``sub``'s catch-up from the store; switches it to live once caught up.

        Returns the messages to send, in order, before anything queued for ``sub`` later.
        Raises ``CursorExpired`` or ``StoreUnavailable`` from the store.
        """
        start = sub.resume_from
        page = await self.store.pull(start, sub.store_filter, self.page_size)
        # From here to the return nothing awaits: the switch to live is atomic with respect to
        # the follower, which moves the shared position in single steps too.
        if sub.closed:
            return []
        encoded = messages.encode_changes(page.entries)
        if page.entries or not same_position(page.vector, start):
            batches = build_batches(
                page.entries,
                encoded,
                range(len(page.entries)),
                start,
                page.vector,
                page.head,
                None,
                self.max_message_bytes,
            )
        else:
            batches = []
        sub.resume_from = page.vector
        if not page.has_more and covers_all(page.vector, self.position):
            self._attach(sub, page.vector)
        return batches

    def _offer(self, sub: Subscriber, batches: list[Batch], changes: int) -> None:
        if sub.queued + changes > self.queue_limit:
            self._overflow(sub)
            return
        sub.queue.extend(batches)
        sub.queued += changes
        sub.wakeup.set()

    def _overflow(self, sub: Subscriber) -> None:
        """Drop ``sub``'s queue; its connection catches up from ``resume_from`` instead."""
        self._detach(sub)
        sub.live = False
        sub.queue.clear()
        sub.queued = 0
        self.metrics.realtime_overflows.inc()
        sub.wakeup.set()

    # the follower -------------------------------------------------------------------------------

    async def _follow(self, notices: Subscription) -> None:
        try:
            while True:
                try:
                    at = await self._next_commit(notices)
                    if at is not None:
                        await self._catch_up(at)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    # Degrade, never die (I8): subscribers wait, nothing is lost, and the next
                    # notice or poll retries from the same position.
                    _log.warning(
                        "realtime_follower_failed", error=type(error).__name__, detail=str(error)
                    )
                    await asyncio.sleep(self.poll_interval)
        finally:
            notices.close()

    async def _next_commit(self, notices: Subscription) -> float | None:
        """The commit time of changes past the position, or None when nothing is new."""
        notice: CommitNotice | None
        try:
            notice = await asyncio.wait_for(anext(notices), self.poll_interval)
        except TimeoutError:
            notice = None
        except StopAsyncIteration:
            await asyncio.sleep(self.poll_interval)  # the bus is closed: poll only
            notice = None
        if notice is not None:
            return None if covers_all(self.position, notice.head) else notice.at
        # No notice for a while: writers in another process (or a bus that lost its broker)
        # do not reach us, so look at the store's head.
        head = await self.store.head()
        return None if covers_all(self.position, head) else time.time()

    async def _catch_up(self, at: float) -> None:
        while True:
            try:
                page = await self.store.pull(self.position, None, self.page_size)
            except CursorExpired:
                self._restart_from_head(await self.store.head())
                return
            self._publish(page, at)
            if not page.has_more:
                return

    def _restart_from_head(self, head: VersionVector) -> None:
        """The position fell behind the retention horizon: every live subscriber replays."""
        _log.warning("realtime_follower_expired", position=self.position)
        for sub in [s for group in self._groups.values() for s in group] + list(self._unaligned):
            self._overflow(sub)
        self.position = head

    def _publish(self, page: FeedPage, at: float) -> None:
        """Hand one page to every live subscriber, then move the shared position past it."""
        before = self.position
        entries = page.entries
        if entries:
            encoded = messages.encode_changes(entries)
            for key, group in list(self._groups.items()):
                indexes = [
                    i for i, e in enumerate(entries) if key is None or e.change.collection in key
                ]
                if not indexes:
                    continue
                batches = build_batches(
                    entries,
                    encoded,
                    indexes,
                    before,
                    page.vector,
                    page.head,
                    at,
                    self.max_message_bytes,
                )
                for sub in list(group):
                    self._offer(sub, batches, len(indexes))
        self.position = page.vector
        self.stable = page.head
        for sub in list(self._unaligned):
            self._publish_unaligned(sub, page, at)
        self._wake_waiters()

    def _publish_unaligned(self, sub: Subscriber, page: FeedPage, at: float) -> None:
        """A live subscriber ahead of the shared position gets what it has not seen yet."""
        entries = page.entries
        indexes = [
            i
            for i, e in enumerate(entries)
            if sub.matches(e) and not cursor_mod.covers(sub.cursor, e.change.origin, e.change.seq)
        ]
        after = cursor_mod.merge(sub.cursor, page.vector)
        if indexes:
            encoded = messages.encode_changes([entries[i] for i in indexes])
            batches = build_batches(
                [entries[i] for i in indexes],
                encoded,
                range(len(indexes)),
                sub.cursor,
                after,
                page.head,
                at,
                self.max_message_bytes,
            )
            self._offer(sub, batches, len(indexes))
            if not sub.live:
                return  # it overflowed
        sub.cursor = after
        if same_position(after, self.position):
            self._detach(sub)
            self._attach(sub, after)

    # long-poll ----------------------------------------------------------------------------------

    def _wake_waiters(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def wait_beyond(self, seen: VersionVector, seconds: float) -> bool:
        """Wait until the feed has a change past ``seen``; False after ``seconds`` or draining."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not any(seq > seen.get(origin, 0) for origin, seq in self.position.items()):
            remaining = deadline - loop.time()
            if self._stopped or remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except TimeoutError:
                return False
        return True
