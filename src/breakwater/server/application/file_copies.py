"""Files across regions: this region copies from its peers the files its documents refer to.

Documents replicate with their ``{"$file": sha}`` references; the bytes follow here
(ADR 0042). A feed consumer notes every file a committed change
refers to (local or replicated) and a background task copies each one this region's blob store
lacks from a peer, verified against its hash. When the process starts, the whole feed is
scanned once, so a file referred to while the node was down is copied too. A download that
finds no bytes yet asks the peers at once (:meth:`FileCopies.fetch_now`). With a blob store
shared by the regions (one S3 bucket), every file is found locally and nothing is copied.

A reference whose file no peer has (an app wrote the document before its upload finished) is
asked for again with capped exponential backoff; the files waiting are bounded in number.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from breakwater.core.cursor import VersionVector
from breakwater.core.errors import BreakwaterError, FileNotReplicated
from breakwater.files.blobs import BlobInfo, BlobStore
from breakwater.files.references import file_references
from breakwater.obs.logging import get_logger
from breakwater.replication.client import PullFailed
from breakwater.replication.files import FetchedFile, PeerFiles
from breakwater.server.application.file_metrics import FileMetrics
from breakwater.storage.base import FeedPage, Store

_log = get_logger("breakwater.files")
SCAN_PAGE = 500
MAX_WAITING = 10_000
"""Files waiting for a copy at most; more references are found again by the next scan."""
RETRY_AFTER = 5
"""Seconds a download told ``file_not_replicated`` is asked to wait."""


@dataclass
class _Waiting:
    due: float
    attempts: int = 0


class FileCopies:
    """Copies referred files from peer regions into this region's blob store."""

    def __init__(
        self,
        blobs: BlobStore,
        store: Store,
        peers: Sequence[PeerFiles],
        staging: Path,
        metrics: FileMetrics,
        *,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.blobs = blobs
        self.store = store
        self.peers = list(peers)
        self.staging = staging
        self.metrics = metrics
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.clock = clock
        self.waiting: dict[str, _Waiting] = {}
        self._inflight: dict[str, asyncio.Future[BlobInfo | None]] = {}
        self._scan = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        metrics.copies_waiting.set_function(lambda: len(self.waiting))

    @property
    def enabled(self) -> bool:
        """True when there are peer regions to copy from."""
        return bool(self.peers)

    # The feed consumer: note what committed changes refer to, never wait for a copy.

    def wants_changes(self, since: VersionVector, head: VersionVector) -> bool:
        """Only with peers: the changes name the files to copy from them."""
        return self.enabled

    def restart(self, head: VersionVector) -> None:
        """The node (re)starts following: scan the whole feed once for references."""
        self._scan = self.enabled
        self._wake.set()

    async def deliver(self, page: FeedPage, at: float) -> None:
        """Note the files the page's changes refer to (a page taken twice notes them twice)."""
        if not self.enabled:
            return
        for entry in page.entries:
            if entry.data is not None:
                for sha256 in file_references(entry.data):
                    self._want(sha256)

    def _want(self, sha256: str) -> None:
        if sha256 not in self.waiting and len(self.waiting) < MAX_WAITING:
            self.waiting[sha256] = _Waiting(due=self.clock())
            self._wake.set()

    # Copies.

    async def fetch_now(self, sha256: str) -> BlobInfo:
        """The file, copied from a peer now if this region lacks it (for a download).

        Raises ``FileNotReplicated`` (503, retryable) when no peer gives it now.
        """
        info = await self._copy(sha256)
        if info is None:
            raise FileNotReplicated(
                f"file {sha256} is not in this region yet and no peer region gave it",
                retry_after=RETRY_AFTER,
            )
        return info

    async def _copy(self, sha256: str) -> BlobInfo | None:
        """One copy at a time per file: a download and the background share it."""
        running = self._inflight.get(sha256)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[BlobInfo | None] = asyncio.get_running_loop().create_future()
        self._inflight[sha256] = future
        try:
            result = await self._copy_once(sha256)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: a copy nobody else awaited is no warning
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[sha256]

    async def _copy_once(self, sha256: str) -> BlobInfo | None:
        stored = await self.blobs.stat(sha256)
        if stored is not None:
            return stored
        for peer in self.peers:
            try:
                fetched = await peer.fetch(sha256, self.staging)
            except PullFailed as failure:
                _log.warning(
                    "file_copy_failed",
                    peer=peer.peer.name,
                    file=sha256,
                    kind=failure.kind,
                    detail=failure.detail,
                )
                continue
            except OSError as error:  # the staging disk, not the peer: no use asking the next
                _log.warning("file_copy_failed", file=sha256, kind="local", detail=repr(error))
                break
            if fetched is not None:
                info = await self.blobs.put(fetched.path, self._info(fetched))
                self.metrics.copies.labels("copied").inc()
                self.metrics.copy_bytes.inc(fetched.size)
                return info
        self.metrics.copies.labels("missing").inc()
        return None

    def _info(self, fetched: FetchedFile) -> BlobInfo:
        def text(key: str, default: str) -> str:
            value = fetched.info.get(key)
            return value if isinstance(value, str) else default

        return BlobInfo(
            sha256=fetched.sha256,
            size=fetched.size,
            content_type=text("content_type", "application/octet-stream"),
            collection=text("collection", ""),
            uploader=text("uploader", ""),
            # The garbage collector's grace starts when this region got it.
            created=time.time(),
        )

    # The background task.

    async def start(self) -> None:
        """Start copying (nothing to do without peers)."""
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self.run_forever())

    async def run_forever(self) -> None:
        """Scan when asked, copy what is due, sleep until the next is due or a wake-up."""
        while True:
            self._wake.clear()
            if self._scan:
                self._scan = False
                await self._guarded(self._scan_feed())
            now = self.clock()
            for sha256, waiting in list(self.waiting.items()):
                if waiting.due <= now:
                    await self._guarded(self._try(sha256, waiting))
            dues = [waiting.due for waiting in self.waiting.values()]
            pause = max(0.0, min(dues) - self.clock()) if dues else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._wake.wait()

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except BreakwaterError as error:  # the blob store or the document store is down
            _log.warning("file_copies_failed", error=error.type, detail=error.detail)

    async def _try(self, sha256: str, waiting: _Waiting) -> None:
        try:
            info = await self._copy(sha256)
        except BaseException:
            self._later(waiting)
            raise
        if info is not None:
            del self.waiting[sha256]
        else:
            self._later(waiting)

    def _later(self, waiting: _Waiting) -> None:
        waiting.attempts += 1
        ceiling = min(self.retry_cap, self.retry_base * 2 ** min(waiting.attempts, 30))
        waiting.due = self.clock() + random.uniform(ceiling / 2, ceiling)

    async def _scan_feed(self) -> None:
        vector: VersionVector = {}
        while True:
            page = await self.store.pull(vector, None, SCAN_PAGE)
            for entry in page.entries:
                if entry.data is not None:
                    for sha256 in file_references(entry.data):
                        if sha256 not in self.waiting and await self.blobs.stat(sha256) is None:
                            self._want(sha256)
            vector = page.vector
            if not page.has_more:
                return

    async def aclose(self) -> None:
        """Stop copying and close the peer connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for peer in self.peers:
            await peer.aclose()
