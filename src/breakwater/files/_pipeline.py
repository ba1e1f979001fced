"""The path of a PATCH body to disk: the event loop receives while one thread writes and
another hashes, so an upload runs at the slowest of the three, not at their sum.

Why two threads: SHA-256 and the write to the page cache (and its flush to disk) both let
go of the GIL on large buffers, so on two or more cores they overlap each other and the
receiving. The write stage also makes the bytes durable as it goes (``fsync`` every
:data:`SYNC_EVERY` bytes), so the ``fsync`` that must end a PATCH before its offset is
acknowledged has only the tail left to flush instead of the whole chunk. Measured by
``breakwater bench files`` (docs/adr/0045-upload-pipeline.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

WRITE_BATCH = 1 << 20
"""Bytes gathered before they go to the threads (a request body arrives in ~256 KiB)."""
PIPELINE = 4
"""Batches that may wait for each thread (bounds the memory one PATCH may hold)."""
SYNC_EVERY = 8 << 20
"""Bytes written between two flushes to disk during a PATCH."""

Batch = list[bytes]


class _Stage:
    """Runs ``work`` on each batch, in order, in a worker thread, at most :data:`PIPELINE`
    batches behind the producer (which then waits: TCP flow control slows the client)."""

    def __init__(self, work: Callable[[Batch], None]) -> None:
        self._queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=PIPELINE)
        self._task = asyncio.create_task(self._run(work))

    async def _run(self, work: Callable[[Batch], None]) -> None:
        while (batch := await self._queue.get()) is not None:
            await asyncio.to_thread(work, batch)

    def check(self) -> None:
        """Raise the stage's error if it failed."""
        if self._task.done():
            self._task.result()

    async def put(self, batch: Batch) -> None:
        await self._queue.put(batch)

    async def finish(self, failed: bool) -> None:
        """Wait until every queued batch is done (``failed``: drop those not started).

        Never cancels work under way: the caller truncates the file after this returns,
        which must not race a thread still writing.
        """
        if self._task.done():
            if not failed:
                self._task.result()
            return
        if failed:
            while not self._queue.empty():
                self._queue.get_nowait()
        await self._queue.put(None)
        if failed:
            await asyncio.gather(self._task, return_exceptions=True)
        else:
            await self._task


class _Sink:
    """Writes batches to the part file and flushes them to disk every :data:`SYNC_EVERY`."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._unsynced = 0

    def __call__(self, batch: Batch) -> None:
        for chunk in batch:
            self._handle.write(chunk)
            self._unsynced += len(chunk)
        if self._unsynced >= SYNC_EVERY:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._unsynced = 0


class BodyPipeline:
    """Writes and hashes the batches of one PATCH body while the next is received.

    ``hasher`` is the upload's running SHA-256 (it carries on across PATCHes),
    ``chunk_hasher`` the ``Upload-Checksum`` one of this body, if any. Each sees every
    batch once, in order.
    """

    def __init__(self, handle: Any, hasher: Any, chunk_hasher: Any) -> None:
        hashers = [hasher] if chunk_hasher is None else [hasher, chunk_hasher]

        def digest(batch: Batch) -> None:
            for chunk in batch:
                for each in hashers:
                    each.update(chunk)

        self._stages = (_Stage(_Sink(handle)), _Stage(digest))

    async def put(self, batch: Batch) -> None:
        """Queue ``batch`` for both threads; raises a thread's error if one failed."""
        for stage in self._stages:
            stage.check()
        if batch:
            for stage in self._stages:
                await stage.put(batch)

    async def finish(self, failed: bool = False) -> None:
        """Wait until both threads are done (``failed``: drop the batches not started)."""
        results = await asyncio.gather(
            *(stage.finish(failed) for stage in self._stages), return_exceptions=True
        )
        if not failed:
            for result in results:
                if isinstance(result, BaseException):
                    raise result
