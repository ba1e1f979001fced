"""Fan-out of the change feed to every realtime subscriber of a node, gap-free (I5).

The fan-out is a consumer of the node's feed follower (:mod:`breakwater.server.application.feed`):
it keeps a shared ``position`` in the feed and publishes each page the follower delivers into the
recent changes it keeps in memory, moving the position past it; while no subscriber is live it
only moves the position (docs/adr/0062-no-fan-out-for-nobody.md). A *sender* task hands the
*live* subscribers what they lack, in passes over them in a fixed order: each gets, at its visit,
every page published since its last one, written straight to its socket when the connection is
idle, else through its bounded queue. Subscribers lacking the same pages with the same filter
share one message text.

A subscriber starts in *replay* mode: its connection catches up from its own cursor
(:meth:`Fanout.replay`), from the recent changes the fan-out keeps in memory when they reach back
that far (the common case after a disconnect or a node's drain), else with its own pulls from the
store. Right after the step that reached the end of the feed, in the same step of the event loop,
the subscriber is switched to live if its cursor covers the shared position. A delivered page
moves the position in a single step too, so no page can slip between the two: every change the
replay did not cover is in a later page, and a page change the replay already delivered is
dropped (its ``(origin, seq)`` is covered by the subscriber's cursor). This is "subscribe first,
replay, then drop what the replay sent" without buffering during the replay, so a long replay
holds no memory.

When a live subscriber's queue would exceed ``queue_limit`` changes (a slow consumer), its queue is
dropped and it goes back to replay mode from the cursor of the last message its connection took: it
loses nothing and catches up through the feed, and the node holds at most ``queue_limit`` changes
for it. The same happens to a live subscriber whose missing pages have left the recent changes
before the sender reached it.

Everything here runs on one event loop; nothing is shared across threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from breakwater.core import cursor as cursor_mod
from breakwater.core.cursor import NO_PEERS, Peers, VersionVector, covers_all
from breakwater.core.errors import StoreUnavailable
from breakwater.obs.logging import get_logger
from breakwater.obs.metrics import Metrics
from breakwater.server.application.feed import FeedFollower
from breakwater.server.realtime import messages
from breakwater.server.realtime.gil import DURING_SENDS
from breakwater.server.realtime.pacing import UNPACED, FanoutPacer
from breakwater.server.realtime.wakeup import Wakeup
from breakwater.storage.base import FeedEntry, FeedPage, Store

if TYPE_CHECKING:
    from breakwater.obs.tracing import Tracing

_log = get_logger("breakwater.realtime")
PAGE_SIZE = 500
MAX_MESSAGE_BYTES = 256 * 1024
RECENT_CHANGES = 10_000
RECENT_BYTES = 16 * 1024 * 1024
SCAN_LIMIT = 4 * PAGE_SIZE
"""Changes a resume from memory looks at per step (a filter may skip most of them)."""
SEND_CHUNK = 32
"""Subscribers the sender visits between two yields to the event loop."""
RETRY_PAUSE = 1.0
"""Seconds the sender waits after a pass failed."""


def _watch_keys(sub: Subscriber) -> Iterable[str | None]:
    """Where the sender looks ``sub`` up: its collections, or ``None`` when it follows all."""
    return (None,) if sub.collections is None else sub.collections


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
    encoded: list[bytes]
    """Its changes, encoded (to merge queued messages into one)."""
    stable: VersionVector
    sse: bytes | None = None
    """The message framed as an SSE event, built by the first SSE connection that sends it."""
    frame: bytes | None = None
    """The message framed as a WebSocket text frame, built by the first direct write of it."""
    size: int = 0
    """Bytes of its changes."""

    def __post_init__(self) -> None:
        self.size = sum(map(len, self.encoded))


def merge_batches(batches: Sequence[Batch]) -> Batch:
    """One message carrying the changes of consecutive ``batches``, with the last cursor."""
    if len(batches) == 1:
        return batches[0]
    last = batches[-1]
    encoded = [body for batch in batches for body in batch.encoded]
    text = messages.changes(encoded, last.cursor_text, last.stable)
    oldest = [batch.at for batch in batches if batch.at is not None]
    at = min(oldest) if oldest else None
    return Batch(text, last.cursor, last.cursor_text, len(encoded), at, encoded, last.stable)


class Subscriber:
    """One connection's subscription: its filter, its position and its bounded queue."""

    __slots__ = (
        "aligned",
        "closed",
        "collections",
        "cursor",
        "direct",
        "generation",
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
        wakeup: Wakeup,
    ) -> None:
        self.collections = collections
        self.resume_from: VersionVector = dict(cursor)
        """Where a replay starts: the cursor of the last message the connection took."""
        self.cursor: VersionVector = {}
        """The position of a live subscriber that is not aligned with the shared position."""
        self.live = False
        self.aligned = False
        """Live at a position of the follower's: :attr:`generation` says which."""
        self.generation = 0
        """The follower's page count when an aligned subscriber was last sent to."""
        self.closed = False
        self.queue: list[Batch] = []
        """Messages waiting for the connection (a list: an idle connection's empty deque would
        cost 760 bytes, a list's 56)."""
        self.queued = 0
        self.wakeup = wakeup
        self.direct: Callable[[list[Batch]], int] | None = None
        """Set by an idle connection that can write messages at once: it takes the first ones
        it can and returns how many; the rest are queued. Used only when nothing is queued."""

    def take(self, max_bytes: int = MAX_MESSAGE_BYTES) -> Batch | None:
        """The next queued message, if any; its cursor becomes the replay point.

        When more are queued (the connection fell behind), they are merged into one message
        of up to ``max_bytes``: fewer, bigger messages is how a busy node keeps up.
        """
        queue = self.queue
        if not queue:
            return None
        size = queue[0].size
        count = 1
        while count < len(queue) and size + queue[count].size <= max_bytes:
            size += queue[count].size
            count += 1
        taken = queue[:count]
        del queue[:count]
        batch = merge_batches(taken)
        self.queued -= batch.changes
        self.resume_from = batch.cursor
        return batch

    @property
    def store_filter(self) -> list[str] | None:
        """The collection filter as the store takes it."""
        return None if self.collections is None else sorted(self.collections)


Messages = tuple[list[Batch], int]
"""Messages for a subscriber, and the number of changes they carry."""
_UNSEEN: Any = object()

Key = tuple[str, int, str]
"""What the fan-out keeps of a change besides its encoding: ``(origin, seq, collection)``."""


def keys_of(entries: Sequence[FeedEntry]) -> list[Key]:
    """The keys of feed entries."""
    return [(e.change.origin, e.change.seq, e.change.collection) for e in entries]


def build_batches(
    keys: Sequence[Key],
    encoded: Sequence[bytes],
    indexes: Iterable[int],
    start: VersionVector,
    end: VersionVector,
    stable: VersionVector,
    at: float | None,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> list[Batch]:
    """Messages carrying change ``i`` for ``i`` in ``indexes``, split at ``max_bytes``.

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
        bodies = [encoded[i] for i in chunk]
        batches.append(
            Batch(
                messages.changes(bodies, text, stable), cursor, text, len(chunk), at, bodies, stable
            )
        )

    for index in indexes:
        length = len(encoded[index])
        if chunk and size + length > max_bytes:
            vector = cursor_mod.advance(vector, (keys[i][:2] for i in chunk))
            emit(chunk, vector)
            chunk, size = [], 0
        chunk.append(index)
        size += length
    emit(chunk, end)
    return batches


def _handover_batch(vector: VersionVector, stable: VersionVector) -> Batch:
    """An empty ``changes`` message that moves the client's cursor to ``vector``."""
    text = cursor_mod.encode(vector)
    return Batch(messages.changes([], text, stable), vector, text, 0, None, [], stable)


@dataclass(slots=True, eq=False)
class RecentPage:
    """One page the follower published, kept for resumes and live sends: its changes, where it
    ends and the wall-clock time of the commit that made the follower pull it."""

    end: VersionVector
    keys: list[Key]
    encoded: list[bytes]
    size: int
    at: float


class Recent:
    """The newest changes of the feed, encoded, in feed order (bounded by count and bytes).

    A resume whose cursor covers :attr:`base` (everything before the oldest page kept) is
    served from here without touching the store: that is what makes a storm of reconnects
    from recent cursors cheap. Live subscribers are sent from here too: each remembers the
    *generation* it has (the number of pages published when it was last sent to), and gets the
    pages after it.
    """

    def __init__(self, base: VersionVector, max_changes: int, max_bytes: int) -> None:
        self.base = dict(base)
        self.pages: deque[RecentPage] = deque()
        self.changes = 0
        self.bytes = 0
        self.max_changes = max_changes
        self.max_bytes = max_bytes
        self.generation = 0
        """How many pages were ever published; the newest kept page is this generation."""

    def add(self, page: RecentPage) -> None:
        """Keep ``page``; forget the oldest pages past the bounds."""
        self.pages.append(page)
        self.generation += 1
        self.changes += len(page.keys)
        self.bytes += page.size
        while len(self.pages) > 1 and (
            self.changes > self.max_changes or self.bytes > self.max_bytes
        ):
            oldest = self.pages.popleft()
            self.changes -= len(oldest.keys)
            self.bytes -= oldest.size
            self.base = oldest.end

    def reset(self, base: VersionVector) -> None:
        """Forget everything (the feed was not followed continuously).

        The generation moves on, so that nobody holding an older one is sent from here.
        """
        self.pages.clear()
        self.changes = self.bytes = 0
        self.base = dict(base)
        self.generation += 1

    def since(self, generation: int) -> list[RecentPage] | None:
        """The pages after ``generation``, or None when some of them were forgotten.

        Walked from the newest end: the sender asks for the last few pages, and a walk from
        the oldest one would pass every page kept (10,000 one-change pages) each time.
        """
        wanted = self.generation - generation
        if wanted > len(self.pages):
            return None
        newest_first = list(itertools.islice(reversed(self.pages), max(wanted, 0)))
        newest_first.reverse()
        return newest_first

    def end_of(self, generation: int) -> VersionVector | None:
        """The feed vector at ``generation``, or None when it was forgotten."""
        kept_from = self.generation - len(self.pages)
        if generation < kept_from or generation > self.generation:
            return None
        return self.base if generation == kept_from else self.pages[generation - kept_from - 1].end

    def first_page_after(self, vector: VersionVector) -> int:
        """The index of the first page with a change ``vector`` does not cover."""
        low, high = 0, len(self.pages)
        while low < high:
            middle = (low + high) // 2
            if covers_all(vector, self.pages[middle].end):
                low = middle + 1
            else:
                high = middle
        return low


def head_is_stable(head: VersionVector) -> VersionVector:
    """One region: ``stable`` is the head itself."""
    return head


class Fanout:
    """The shared position and the live subscribers of one node (a consumer of its feed)."""

    def __init__(
        self,
        store: Store,
        feed: FeedFollower,
        metrics: Metrics,
        *,
        queue_limit: int,
        recent_changes: int = RECENT_CHANGES,
        recent_bytes: int = RECENT_BYTES,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        pacer: FanoutPacer | None = None,
        tracing: Tracing | None = None,
        stable_of: Callable[[VersionVector], VersionVector] = head_is_stable,
        peers_of: Callable[[], Peers] = lambda: NO_PEERS,
    ) -> None:
        self.store = store
        self.tracing = tracing
        self._untraced: list[tuple[str, int]] = []
        """Changes published for the live subscribers since the sender's last pass (tracing)."""
        self.peers_of = peers_of
        """What the region knows of its peers: whose changes a cursor may name before
        replication brings them here."""
        self.feed = feed
        self.stable_of = stable_of
        """The ``stable`` vector to send with a page read at a head (the head itself for one
        region; the region's causally stable vector with peers)."""
        self.pacer = pacer or UNPACED
        self.metrics = metrics
        self.queue_limit = queue_limit
        self.page_size = min(PAGE_SIZE, queue_limit)
        self.max_message_bytes = max_message_bytes
        self.position: VersionVector = {}
        self.stable: VersionVector = {}
        self.recent = Recent({}, recent_changes, recent_bytes)
        self._live: dict[Subscriber, None] = {}
        """Aligned subscribers, in the order they went live."""
        self._watching: dict[str | None, dict[Subscriber, None]] = {}
        """Aligned subscribers by collection they follow (``None``: those that follow all)."""
        self._swept = 0
        """The generation the sender's last pass reached: an aligned subscriber lacks none of
        the pages up to it that touch its collections (it was visited for those)."""
        self._unaligned: set[Subscriber] = set()
        self._handover: tuple[int, VersionVector, Batch] | None = None
        """The last :meth:`handover` message of aligned subscribers: for which generation and
        stable vector."""
        self._written_directly = 0
        """Live messages written straight to sockets since the figures were last recorded."""
        self._published = asyncio.Event()
        """Set when a page is published that the sender has not sent yet."""
        self._sender: asyncio.Task[None] | None = None
        self.following = False
        """True once the position is the store's head (a replay before then could attach a
        subscriber behind the position the follower starts from)."""

    # lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sender (the feed follower delivers pages on its own)."""
        self._sender = asyncio.create_task(self._send_loop(), name="bw-realtime-sender")

    async def aclose(self) -> None:
        """Stop the sender."""
        # Python 3.11's wait_for can swallow a cancellation that lands as its inner wait
        # finishes; the cancel is repeated until it is done.
        while self._sender is not None and not self._sender.done():
            self._sender.cancel()
            await asyncio.wait({self._sender}, timeout=1.0)
        self._sender = None

    # subscribers --------------------------------------------------------------------------------

    def remove(self, sub: Subscriber) -> None:
        """Forget ``sub`` (its connection ended or it unsubscribed)."""
        sub.closed = True
        sub.direct = None
        self._detach(sub)
        sub.live = False
        sub.queue.clear()
        sub.queued = 0

    def handover(self, sub: Subscriber) -> Batch:
        """An empty ``changes`` message carrying where a live subscriber stands once its queue
        is sent: a heartbeat hands it over when changes its filter skipped moved the cursor.

        While writes go on that is nearly every heartbeat of every quiet subscriber, so the
        aligned subscribers at one position share one message (and one frame), built once.
        """
        if not sub.aligned:
            return _handover_batch(dict(sub.cursor), self.stable)
        generation = max(sub.generation, self._swept)
        cached = self._handover
        if cached is not None and cached[0] == generation and cached[1] is self.stable:
            return cached[2]
        vector = self.recent.end_of(generation)
        if vector is None:
            # Forgotten: the sender will send it back to replay from where its messages ended.
            return _handover_batch(dict(sub.resume_from), self.stable)
        batch = _handover_batch(vector, self.stable)
        self._handover = (generation, self.stable, batch)
        return batch

    def _detach(self, sub: Subscriber) -> None:
        if sub.aligned:
            self._live.pop(sub, None)
            for name in _watch_keys(sub):
                watchers = self._watching.get(name)
                if watchers is not None:
                    watchers.pop(sub, None)
                    if not watchers:
                        del self._watching[name]
        else:
            self._unaligned.discard(sub)
        sub.aligned = False

    def _attach(self, sub: Subscriber, cursor: VersionVector) -> None:
        """Make ``sub`` live at ``cursor`` (which covers the shared position)."""
        sub.live = True
        if same_position(cursor, self.position):
            sub.aligned = True
            sub.generation = self.recent.generation
            self._live[sub] = None
            for name in _watch_keys(sub):
                self._watching.setdefault(name, {})[sub] = None
        else:
            sub.aligned = False
            sub.cursor = dict(cursor)
            self._unaligned.add(sub)

    async def replay(self, sub: Subscriber) -> list[Batch]:
        """One step of ``sub``'s catch-up; switches it to live once it has caught up.

        Served from the recent changes in memory when they reach back to the subscriber's
        cursor, else pulled from the store. Returns the messages to send, in order, before
        anything queued for ``sub`` later. Raises ``CursorGone`` or ``StoreUnavailable``.
        """
        if sub.closed:
            return []
        if not self.following:
            raise StoreUnavailable("the feed's head could not be read yet")
        start = sub.resume_from
        # Memory may still hold changes the retention pass removed from the store; a cursor
        # behind the horizon goes to the store all the same, to get cursor_expired there. So
        # does one ahead of what this node has followed: the store's head decides whether it
        # is honoured (the follower may merely lag behind another node's commit).
        low_water = self.feed.low_water
        if (
            covers_all(start, self.recent.base)
            and (not start or covers_all(start, low_water))
            and covers_all(self.position, start)
        ):
            return self._replay_recent(sub)
        page = await self.store.pull(start, sub.store_filter, self.page_size)
        cursor_mod.require_honourable(start, page.head, self.peers_of())
        # From here to the return nothing awaits: the switch to live is atomic with respect to
        # the follower, which moves the shared position in single steps too.
        if sub.closed:
            return []
        batches = []
        if page.entries or not same_position(page.vector, start):
            batches = build_batches(
                keys_of(page.entries),
                messages.encode_changes(page.entries),
                range(len(page.entries)),
                start,
                page.vector,
                page.head,
                None,
                self.max_message_bytes,
            )
        sub.resume_from = page.vector
        if not page.has_more and covers_all(page.vector, self.position):
            self._attach(sub, page.vector)
        return batches

    def _replay_recent(self, sub: Subscriber) -> list[Batch]:
        """A catch-up step from memory (synchronous, so the switch to live is atomic)."""
        start = sub.resume_from
        keys: list[Key] = []
        encoded: list[bytes] = []
        wanted: list[int] = []
        pages = self.recent.pages
        index = self.recent.first_page_after(start)
        scanned = 0
        while index < len(pages) and len(wanted) < self.page_size and scanned < SCAN_LIMIT:
            page = pages[index]
            for key, body in zip(page.keys, page.encoded, strict=True):
                origin, seq, collection = key
                if cursor_mod.covers(start, origin, seq):
                    continue
                if sub.collections is None or collection in sub.collections:
                    wanted.append(len(keys))
                keys.append(key)
                encoded.append(body)
            scanned += len(page.keys)
            index += 1
        done = index == len(pages)
        end = (
            cursor_mod.merge(start, self.position)
            if done
            else cursor_mod.advance(start, (key[:2] for key in keys))
        )
        batches = []
        if wanted or (done and not same_position(end, start)):
            batches = build_batches(
                keys, encoded, wanted, start, end, self.stable, None, self.max_message_bytes
            )
        sub.resume_from = end
        if done:
            self._attach(sub, end)
        return batches

    def _offer(self, sub: Subscriber, batches: list[Batch], changes: int) -> None:
        direct = sub.direct
        if direct is not None and not sub.queue:
            # The connection is idle and writable: hand the messages straight to its socket,
            # without waking its task (the cost of a wake-up per subscriber per commit is what
            # bounds fan-out to thousands of subscribers).
            written = direct(batches)
            if written:
                self._written_directly += written
                if written == len(batches):
                    return
                batches = batches[written:]
                changes = sum(batch.changes for batch in batches)
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

    # the feed's consumer ------------------------------------------------------------------------

    def wants_changes(self, since: VersionVector, head: VersionVector) -> bool:
        """While a subscriber is live: one still replaying reads the store itself."""
        return bool(self._live or self._unaligned)

    def restart(self, head: VersionVector) -> None:
        """The follower starts at ``head``: every live subscriber (none at the first start or
        when it moved on unread, all when it fell behind the retention horizon) replays from
        its cursor, and the recent changes start there."""
        for sub in list(self._live) + list(self._unaligned):
            self._overflow(sub)
        self.position = dict(head)
        self.stable = self.stable_of(head)
        self.recent.reset(head)
        self._swept = self.recent.generation
        self.following = True

    async def deliver(self, page: FeedPage, at: float) -> None:
        """Publish the follower's next page (without awaiting, so the position moves in one
        step); while nobody is live, only move past it."""
        if self._live or self._unaligned:
            self._publish(page, at)
        else:
            self._pass(page)

    def _pass(self, page: FeedPage) -> None:
        """Move the position past ``page`` without encoding or keeping its changes.

        Another consumer (the read cache) may have the follower read every page while no
        subscriber is live; encoding each change into the recent changes for nobody cost a
        one-worker node CPU on every write. The recent changes start again at the new
        position, as at a :meth:`restart`, so a subscriber arriving later replays from the
        store up to a position it then goes live at (I5), as when the follower skips.
        """
        self.position = page.vector
        self.stable = self.stable_of(page.head)
        self.recent.reset(page.vector)
        self._swept = self.recent.generation

    def _publish(self, page: FeedPage, at: float) -> None:
        """Add one page to the recent changes and move the shared position past it.

        Aligned subscribers get it from the sender (:meth:`_send_loop`); the few unaligned ones,
        whose cursors differ from everyone's, get it here.
        """
        if page.entries or not same_position(page.vector, self.position):
            keys = keys_of(page.entries)
            encoded = messages.encode_changes(page.entries)
            self.recent.add(RecentPage(page.vector, keys, encoded, sum(map(len, encoded)), at))
            if self.tracing is None or not self._unaligned:
                for sub in list(self._unaligned):
                    self._publish_unaligned(sub, keys, encoded, page, at)
            else:
                with self._delivery_span(self.tracing, keys, len(self._unaligned)):
                    for sub in list(self._unaligned):
                        self._publish_unaligned(sub, keys, encoded, page, at)
            if self.tracing is not None and self._live:
                self._untraced.extend(key[:2] for key in keys)
            self._record_direct_writes(at)
            if self._live:
                self._published.set()
        self.position = page.vector
        self.stable = self.stable_of(page.head)
        for sub in list(self._unaligned):
            sub.cursor = cursor_mod.merge(sub.cursor, page.vector)
            if same_position(sub.cursor, self.position):
                self._detach(sub)
                self._attach(sub, sub.cursor)

    def _publish_unaligned(
        self, sub: Subscriber, keys: list[Key], encoded: list[bytes], page: FeedPage, at: float
    ) -> None:
        """A live subscriber ahead of the shared position gets what it has not seen yet."""
        indexes = [
            i
            for i, (origin, seq, collection) in enumerate(keys)
            if (sub.collections is None or collection in sub.collections)
            and not cursor_mod.covers(sub.cursor, origin, seq)
        ]
        if indexes:
            after = cursor_mod.merge(sub.cursor, page.vector)
            batches = build_batches(
                keys, encoded, indexes, sub.cursor, after, page.head, at, self.max_message_bytes
            )
            self._offer(sub, batches, len(indexes))

    # the sender ---------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        """Visit the aligned subscribers in passes, each getting every page it lacks at once.

        The follower publishes while a pass runs, so a subscriber late in the pass already gets
        the pages published since the pass began: a change waits at most one pass for every
        subscriber, not the rest of one round and then its place in the next. Subscribers that
        lack the same pages share the same messages.
        """
        while True:
            await self._published.wait()
            self._published.clear()
            try:
                with DURING_SENDS:
                    if self.tracing is None:
                        spent = await self._send_pass()
                    else:
                        keys, self._untraced = self._untraced, []
                        with self._delivery_span(self.tracing, keys, len(self._live)):
                            spent = await self._send_pass()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # A subscriber's failure must not stop the others' delivery (I8).
                _log.warning("realtime_send_failed", error=type(error).__name__, detail=str(error))
                self._published.set()
                await asyncio.sleep(RETRY_PAUSE)
                continue
            pause = self.pacer.pause_after(spent)
            if pause:
                # Commits made meanwhile leave together in the next pass.
                await asyncio.sleep(pause)

    async def _send_pass(self) -> float:
        """One visit of every aligned subscriber that lacks pages; returns the seconds it took
        of the event loop (which it yields every ``SEND_CHUNK`` subscribers).

        Only the readers of the collections that the pages published since the last pass
        touch are visited (and those of every collection): the others lack none of them, so a
        page costs in proportion to its readers, not to the node's connections.
        """
        spent = 0.0
        shared: dict[tuple[frozenset[str] | None, int], Messages | None] = {}
        shared_for = -1
        started = time.perf_counter()
        visited = 0
        oldest: float | None = None
        recent = self.recent
        swept = self._swept
        pages = recent.since(swept)
        # Forgotten pages: everyone is visited, and whoever lacks them catches up from its cursor.
        readers = list(self._live) if pages is None else self._readers_of(pages)
        reached = recent.generation
        for sub in readers:
            generation = recent.generation
            if sub.generation >= generation or not sub.aligned:
                continue
            if generation != shared_for:
                shared.clear()
                shared_for = generation
            start = max(sub.generation, swept)
            key = (sub.collections, start)
            found = shared.get(key, _UNSEEN)
            if found is _UNSEEN:
                found = shared[key] = self._messages_since(sub.collections, start)
            if found is None:
                self._overflow(sub)  # its pages were forgotten: it catches up from its cursor
                continue
            sub.generation = generation
            batches, changes = found
            if batches:
                self._offer(sub, batches, changes)
                at = batches[0].at
                if at is not None and (oldest is None or at < oldest):
                    oldest = at
            visited += 1
            if visited % SEND_CHUNK == 0:
                self._record_direct_writes(oldest)
                oldest = None
                spent += time.perf_counter() - started
                await asyncio.sleep(0)  # requests and the follower's next page come in here
                started = time.perf_counter()
        self._record_direct_writes(oldest)
        # Only now: until every reader of those pages was visited, a cursor handed over in a
        # heartbeat (:meth:`handover`) must not cover them.
        self._swept = max(self._swept, reached)
        return spent + time.perf_counter() - started

    def _readers_of(self, pages: Iterable[RecentPage]) -> list[Subscriber]:
        """The aligned subscribers that follow a collection changed in ``pages``, or all."""
        readers = dict(self._watching.get(None, {}))
        for name in {key[2] for page in pages for key in page.keys}:
            readers.update(self._watching.get(name, {}))
        return list(readers)

    @contextlib.contextmanager
    def _delivery_span(
        self, tracing: Tracing, keys: Sequence[tuple[str, int] | Key], subscribers: int
    ) -> Iterator[None]:
        """A ``realtime.deliver`` span around one delivery of changes ``keys`` to subscribers,
        linked to the spans of the writes that made them (none when no write was kept)."""
        span = tracing.delivery_span(
            "realtime.deliver",
            (key[:2] for key in keys),
            **{"breakwater.changes": len(keys), "breakwater.subscribers": subscribers},
        )
        try:
            yield
        finally:
            if span is not None:
                span.end()

    def _messages_since(
        self, collections: frozenset[str] | None, generation: int
    ) -> Messages | None:
        """The messages that bring a subscriber of ``collections`` from ``generation`` to the
        position, and how many changes they carry; None when those pages were forgotten."""
        pages = self.recent.since(generation)
        start = self.recent.end_of(generation)
        if pages is None or start is None:
            return None
        if len(pages) == 1:
            keys, encoded = pages[0].keys, pages[0].encoded
        else:
            keys = [key for page in pages for key in page.keys]
            encoded = [body for page in pages for body in page.encoded]
        indexes = [i for i, key in enumerate(keys) if collections is None or key[2] in collections]
        if not indexes:
            return [], 0
        batches = build_batches(
            keys,
            encoded,
            indexes,
            start,
            self.position,
            self.stable,
            min(page.at for page in pages),
            self.max_message_bytes,
        )
        return batches, len(indexes)

    def _record_direct_writes(self, oldest: float | None) -> None:
        """Record the notify latency of the messages written straight to sockets since the last
        call: one clock read after them, from the ``oldest`` commit (an upper bound for each)."""
        if self._written_directly and oldest is not None:
            self.metrics.realtime.notified(max(0.0, time.time() - oldest), self._written_directly)
        self._written_directly = 0
