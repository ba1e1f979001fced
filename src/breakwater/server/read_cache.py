"""Hot document reads and query pages through the cache, kept fresh by validation tokens.

See docs/adr/0006-cache-invalidation.md. In short: every entry is tagged with the tokens that
were current *before* its value was read from the store; a lookup serves it only while those
tokens are still current. Every commit replaces the tokens it affects (the document's and its
collection's) with fresh random ones, on the writing node before it acknowledges and on every
node when its feed follower meets the change. Random tokens never come back, so a token that
was evicted or expired makes its entries unreachable instead of valid again.

- ``e``: the epoch, replaced when a node starts and after an invalidation that failed.
- ``g/<collection>/<id>``, ``c/<collection>``: a document's and a collection's token.
- ``d/<collection>/<id>``: a document entry, ``q/<collection>/<digest>``: a query page.

An entry's value is ``<tag>\\n<payload>`` with ``tag = <epoch>.<token>``. A cache failure never
fails a request: the read goes to the store, the failure is counted, and the cache is left
alone for a backoff. A node whose invalidation failed reads the store only until it has
replaced the epoch, so it never serves its own clients what it overwrote.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from breakwater.cache import Cache, CacheUnavailable
from breakwater.cache.none import NoCache
from breakwater.core import codec
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import StoredDoc
from breakwater.core.query import Query
from breakwater.obs.metrics import Metrics
from breakwater.resilience import Backoff
from breakwater.server.wire import doc_json
from breakwater.storage.base import FeedPage

EPOCH = "e"
TOKEN_TTL_FACTOR = 4
"""Tokens outlive the entries they validate (a lost token only costs misses)."""
REMEMBERED = 10_000
"""Changes this node invalidated itself, remembered so its follower does not do it again (or,
when they are all it would read, does not read them at all)."""

Touched = tuple[str, str, str, int]
"""A committed change: ``(collection, id, origin, seq)``."""


@dataclass(frozen=True, slots=True)
class CachedDoc:
    """A live document as the GET endpoint answers it."""

    body: bytes
    version: str


_TOKEN_PREFIX = secrets.token_hex(8)
_TOKEN_COUNTER = itertools.count(1)


def _token() -> bytes:
    """A token never issued before by any node: a random 64-bit prefix drawn once per process,
    then a counter (a fresh random token per commit cost a system call on every write)."""
    return f"{_TOKEN_PREFIX}{next(_TOKEN_COUNTER):x}".encode()


def _query_digest(query: Query, viewer: str) -> str:
    # repr keeps 1, 1.0 and True apart, as the store's comparisons do.
    return hashlib.blake2b(f"{query!r}\n{viewer}".encode(), digest_size=12).hexdigest()


class ReadCache:
    """The server's reads through a :class:`~breakwater.cache.Cache`."""

    def __init__(
        self,
        cache: Cache,
        metrics: Metrics,
        ttl: float,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.metrics = metrics
        self.ttl = ttl
        self.token_ttl = ttl * TOKEN_TTL_FACTOR
        self.backoff = backoff or Backoff(base=0.05, cap=5.0)
        self._clock = clock
        self._done: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._resume_at = 0.0
        self._epoch_stale = True
        """True until this node has replaced the epoch (at start, and after a failed
        invalidation): until then its reads skip the cache."""

    @property
    def healthy(self) -> bool:
        """False while the cache is being left alone after a failure."""
        return not self._epoch_stale and self._clock() >= self._resume_at

    async def check(self) -> bool:
        """Whether the cache answers now (a readiness check: one bounded round trip).

        A node whose epoch is stale renews it here, so it does not stay degraded until its
        next read.
        """
        if not self._usable():
            return False
        if self._epoch_stale:
            return await self._renew_epoch()
        try:
            await self.cache.get_many([EPOCH])
        except CacheUnavailable:
            self._failed("read")
            return False
        return True

    # plumbing -----------------------------------------------------------------------------------

    def _failed(self, operation: str) -> None:
        self.metrics.cache_errors.labels(operation).inc()
        self._resume_at = self._clock() + self.backoff.next_delay()

    def _usable(self) -> bool:
        return self._clock() >= self._resume_at

    async def _renew_epoch(self) -> bool:
        """Replace the epoch (every entry becomes unreachable); True once done."""
        if not self._usable():
            return False
        try:
            await self.cache.set_many({EPOCH: _token()}, self.token_ttl)
        except CacheUnavailable:
            self._failed("invalidate")
            return False
        self._epoch_stale = False
        self.backoff.reset()
        return True

    async def start(self) -> None:
        """Replace the epoch: a node that died between a commit and its invalidation left
        entries that this makes unreachable."""
        await self._renew_epoch()

    async def _tag(self, values: list[bytes | None], token_key: str) -> bytes | None:
        """``epoch.token`` from looked-up values, creating missing ones; None if not now."""
        epoch, token = values
        try:
            if epoch is None:
                epoch = _token()
                if not await self.cache.add(EPOCH, epoch, self.token_ttl):
                    return None
            if token is None:
                token = _token()
                if not await self.cache.add(token_key, token, self.token_ttl):
                    return None
        except CacheUnavailable:
            self._failed("read")
            return None
        return epoch + b"." + token

    async def _lookup(
        self, token_key: str, entry_key: str, load: Callable[[], Awaitable[bytes | None]]
    ) -> bytes | None:
        """The payload of ``entry_key`` if its tag is current, else ``load()`` (then kept)."""
        if self._epoch_stale and not await self._renew_epoch():
            self.metrics.cache_lookups.labels("bypass").inc()
            return await load()
        if not self._usable():
            self.metrics.cache_lookups.labels("bypass").inc()
            return await load()
        try:
            epoch, token, entry = await self.cache.get_many([EPOCH, token_key, entry_key])
        except CacheUnavailable:
            self._failed("read")
            self.metrics.cache_lookups.labels("error").inc()
            return await load()
        self.backoff.reset()
        if epoch is not None and token is not None and entry is not None:
            tag, _, cached = entry.partition(b"\n")
            if tag == epoch + b"." + token:
                self.metrics.cache_lookups.labels("hit").inc()
                return cached
        self.metrics.cache_lookups.labels("miss").inc()
        # The tag is taken before the store is read: a commit after this point replaces a
        # token, so what we keep below can never be served once it is stale.
        current = await self._tag([epoch, token], token_key)
        payload = await load()
        if current is not None and payload is not None:
            try:
                await self.cache.set_many({entry_key: current + b"\n" + payload}, self.ttl)
            except CacheUnavailable:
                self._failed("write")
        return payload

    # reads --------------------------------------------------------------------------------------

    async def document(
        self, collection: str, doc_id: str, load: Callable[[], Awaitable[StoredDoc | None]]
    ) -> CachedDoc | None:
        """The live document ``collection/doc_id`` (None if absent or deleted)."""

        async def encoded() -> bytes | None:
            doc = await load()
            if doc is None or doc.deleted:
                return None
            return doc.version.encode() + b"\n" + codec.dumps(doc_json(doc))

        payload = await self._lookup(
            f"g/{collection}/{doc_id}", f"d/{collection}/{doc_id}", encoded
        )
        if payload is None:
            return None
        version, _, body = payload.partition(b"\n")
        return CachedDoc(body, version.decode())

    async def query(
        self, query: Query, load: Callable[[], Awaitable[bytes]], viewer: str = ""
    ) -> bytes:
        """The encoded response of one query page as ``viewer`` sees it (a read rule's view of
        the page; empty when the page is the same for every caller allowed to run ``query``)."""
        collection = query.collection
        payload = await self._lookup(
            f"c/{collection}", f"q/{collection}/{_query_digest(query, viewer)}", load
        )
        return payload if payload is not None else await load()

    # invalidation -------------------------------------------------------------------------------

    async def committed(self, changes: Sequence[Touched]) -> None:
        """This node committed ``changes``: invalidate them before it acknowledges them."""
        for _, _, origin, seq in changes:
            self._done[(origin, seq)] = None
        while len(self._done) > REMEMBERED:
            self._done.popitem(last=False)
        await self.invalidate((collection, doc_id) for collection, doc_id, _, _ in changes)

    async def followed(self, changes: Sequence[Touched]) -> None:
        """The feed follower met ``changes`` (from any node): invalidate those this node has
        not invalidated already."""
        others = []
        for collection, doc_id, origin, seq in changes:
            if (origin, seq) in self._done:
                del self._done[(origin, seq)]
            else:
                others.append((collection, doc_id))
        await self.invalidate(others)

    # as a consumer of the node's feed follower ---------------------------------------------

    def wants_changes(self, since: VersionVector, head: VersionVector) -> bool:
        """Whether a change past ``since`` up to ``head`` may be one this node has not
        invalidated: other writers' changes must invalidate what this node cached.

        No when nothing is cached (``none://``, a worker's default), and no when each of
        those positions is a change this node :meth:`committed` (and so invalidated, before
        its writer was acknowledged): reading them back would only find them done (ADR 0065).
        """
        if isinstance(self.cache, NoCache):
            return False
        done = self._done
        for origin, seq in head.items():
            first = since.get(origin, 0) + 1
            if seq - first >= len(done):  # more changes than this node remembers
                return True
            if any((origin, each) not in done for each in range(first, seq + 1)):
                return True
        return False

    def restart(self, head: VersionVector) -> None:
        """Forget the remembered changes at or before ``head``, oldest first: they will not
        be delivered. (Other writers' changes skipped past a retention horizon are never
        delivered: the entries they made stale expire with their ttl.)"""
        done = self._done
        while done:
            origin, seq = next(iter(done))
            if seq > head.get(origin, 0):
                return
            del done[origin, seq]

    async def deliver(self, page: FeedPage, at: float) -> None:
        """Invalidate what a page of the feed changed (before the fan-out tells anyone)."""
        if page.entries:
            await self.followed(
                [
                    (e.change.collection, e.change.doc_id, e.change.origin, e.change.seq)
                    for e in page.entries
                ]
            )

    async def invalidate(self, documents: Iterable[tuple[str, str]]) -> None:
        """Replace the tokens of the committed ``(collection, id)`` documents and their
        collections. On failure the epoch must be replaced before this node reads again."""
        # One new token for every key: a key's token only has to differ from each it held
        # before, and a token is never issued twice.
        token = _token()
        tokens: dict[str, bytes] = {}
        collections: set[str] = set()
        for collection, doc_id in documents:
            tokens[f"g/{collection}/{doc_id}"] = token
            collections.add(collection)
        for collection in collections:
            tokens[f"c/{collection}"] = token
        if not tokens:
            return
        if not self._usable():
            self._epoch_stale = True
            self.metrics.cache_errors.labels("invalidate").inc()
            return
        try:
            # A token that is not there validates nothing, and a reader that adds it later
            # reads the store after this commit (ADR 0006): only tokens present are replaced,
            # so the documents a push creates add nothing to the cache.
            await self.cache.replace_many(tokens, self.token_ttl)
        except CacheUnavailable:
            self._epoch_stale = True
            self._failed("invalidate")
