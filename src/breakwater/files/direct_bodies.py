"""Bodies that move themselves into an upload's part file, and the hashing that follows them.

ADR 0057. A tus PATCH body read from the socket by a thread (``server/socket_bodies.py``)
goes socket → pipe → part file with ``splice``: the kernel copies each byte once, into the
page cache, and no Python buffer holds the body. The upload's SHA-256 (its content address)
and the chunk's ``Upload-Checksum`` digest are then computed by :class:`RangeHasher` on
another thread, reading back from the page cache each range as soon as it is in the file,
so hashing overlaps the receive as before (ADR 0055) and the event loop sees only the end.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

READ_BACK = 1 << 20
"""Bytes the hashing thread reads back at once (one reused buffer, warm in the CPU cache)."""
SYNC_EVERY = 8 << 20
"""Bytes written between two background ``fdatasync``s while a body arrives (ADR 0055)."""
_HASHERS = ThreadPoolExecutor(4, thread_name_prefix="upload-hash")
_FLUSHER = ThreadPoolExecutor(2, thread_name_prefix="upload-flush")


@runtime_checkable
class FileBody(Protocol):
    """A request body that writes itself into a file instead of being iterated."""

    length: int
    """The bytes the body declares (its ``Content-Length``)."""

    async def into_file(self, fd: int, offset: int, moved: Callable[[int], None]) -> int:
        """Write the body into ``fd`` from ``offset``; the count written, fewer than
        :attr:`length` only when the client went away or stalled (what arrived is kept).

        ``moved(total)`` is called, from the writing thread, each time the file holds
        ``total`` bytes of the body. An error writing the file is raised. Returns only once
        nothing writes into ``fd`` any more, even when cancelled (then re-raised after).
        """
        ...

    def refuse(self) -> None:
        """The body will not be read: the connection cannot be reused after the answer."""
        ...


class Flusher:
    """Starts an ``fdatasync`` of a file every :data:`SYNC_EVERY` bytes written, without
    waiting for it (one at a time per file), so that the ``fsync`` that ends a PATCH finds
    little left to flush (ADR 0055)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._synced = 0
        self._running: Future[None] | None = None

    def wrote(self, total: int) -> None:
        """The file now holds ``total`` more bytes than when this flusher began."""
        if total - self._synced >= SYNC_EVERY and (self._running is None or self._running.done()):
            self._running = _FLUSHER.submit(_datasync, os.dup(self._fd))
            self._synced = total


def _datasync(fd: int) -> None:
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


class RangeHasher:
    """Hashes ``fd`` from ``start`` as far as :meth:`moved` says the file is written, on a
    thread of its own pool (reading back with ``pread``; the file position is untouched).

    The writer never waits for it: the bytes are safe in the file, so a lagging hasher holds
    no memory; :meth:`finish` waits for it to catch up.
    """

    def __init__(self, fd: int, start: int, hashers: list[Any]) -> None:
        self._fd = fd
        self._start = start
        self._end = start
        self._hashers = hashers
        self._ended = False
        self._dropped = False
        self._changed = threading.Condition()
        self._job = asyncio.wrap_future(_HASHERS.submit(self._run))

    def moved(self, total: int) -> None:
        """The file holds ``total`` bytes from ``start`` (called from the writing thread)."""
        with self._changed:
            self._end = self._start + total
            self._changed.notify()

    async def finish(self, failed: bool = False) -> None:
        """Wait until every byte moved is hashed (``failed``: stop at once, for a part
        about to be cut back); the hashing thread's error is raised."""
        with self._changed:
            self._ended = True
            self._dropped = failed
            self._changed.notify()
        await settled(self._job)
        error = self._job.exception()
        if error is not None and not failed:
            raise error

    def _run(self) -> None:
        buffer = bytearray(READ_BACK)
        view = memoryview(buffer)
        at = self._start
        try:
            while True:
                with self._changed:
                    while self._end == at and not self._ended:
                        self._changed.wait()
                    end = -1 if self._dropped else self._end
                if end <= at:
                    return
                while at < end:
                    count = os.preadv(self._fd, [view[: min(READ_BACK, end - at)]], at)
                    if count == 0:
                        raise OSError(f"the part file ends at {at}, before {end}")
                    for hasher in self._hashers:
                        hasher.update(view[:count])
                    at += count
        finally:
            view.release()


async def settled(job: asyncio.Future[Any]) -> None:
    """Wait for a thread's job to end, even through a cancellation (re-raised after): a
    part file is cut back or closed only once nothing works on it any more."""
    cancelled = False
    while not job.done():
        try:
            await asyncio.wait([job])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
