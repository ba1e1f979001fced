"""Unfinished tus uploads: ``<root>/<id>.json`` (what was declared) and ``<id>.part`` (the
bytes so far), on the node's local disk whatever the blob store.

The offset of an upload is the size of its part file, which is fsynced before a PATCH is
answered: an offset a client was told is on disk (a crash can only lose bytes no answer
named, and the client's HEAD finds the true offset). The SHA-256 of the part is carried
along in memory while the process lives and recomputed from the part after a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breakwater.core.errors import (
    ChecksumMismatch,
    NotFound,
    OffsetMismatch,
    PayloadTooLarge,
    UploadLocked,
)
from breakwater.files.checksums import ExpectedChecksum
from breakwater.files.direct_bodies import FileBody, Flusher, RangeHasher

WRITE_BATCH = 1 << 20
"""Bytes gathered before one write+hash in a thread (a request body arrives in ~64 KiB
through ASGI, in 1 MiB buffers when a thread reads it from the socket: ADR 0055)."""
PIPELINE = 4
"""Batches that may wait for the writer thread (the memory one PATCH may hold)."""
ID_BYTES = 16
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
"""What ``secrets.token_urlsafe`` makes; anything else names no upload (nor any path)."""


@dataclass(frozen=True)
class Upload:
    """One upload as a client sees it through HEAD."""

    id: str
    length: int
    offset: int
    collection: str
    uploader: str
    content_type: str
    metadata: str
    """The ``Upload-Metadata`` header as the client sent it (echoed by HEAD)."""
    created: float
    expires: float
    sha256: str = ""
    """Set once the last byte arrived and the file was stored."""

    @property
    def finished(self) -> bool:
        """True once every declared byte is stored."""
        return bool(self.sha256)


@dataclass
class _Progress:
    """The running SHA-256 of an upload's part, valid for ``offset`` bytes."""

    offset: int
    hasher: Any


class Uploads:
    """Create, resume, append to and finish uploads in one directory."""

    def __init__(self, root: Path, lifetime: float, clock: Callable[[], float] = time.time):
        self.root = root
        self.lifetime = lifetime
        self.clock = clock
        self._progress: dict[str, _Progress] = {}
        self._busy: set[str] = set()

    def _meta(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.json"

    def part(self, upload_id: str) -> Path:
        """Where the bytes of an unfinished upload are."""
        return self.root / f"{upload_id}.part"

    async def create(
        self, length: int, collection: str, uploader: str, content_type: str, metadata: str
    ) -> Upload:
        """A new empty upload of ``length`` bytes, durable when it returns."""
        now = self.clock()
        upload = Upload(
            id=secrets.token_urlsafe(ID_BYTES),
            length=length,
            offset=0,
            collection=collection,
            uploader=uploader,
            content_type=content_type,
            metadata=metadata,
            created=now,
            expires=now + self.lifetime,
        )

        def write() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            self.part(upload.id).touch()
            self._write_meta(upload)

        await asyncio.to_thread(write)
        self._progress[upload.id] = _Progress(0, hashlib.sha256())
        return upload

    def _write_meta(self, upload: Upload) -> None:
        record = dataclasses.asdict(upload)
        del record["offset"]
        temp = self._meta(upload.id).with_suffix(".tmp")
        with temp.open("w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(self._meta(upload.id))

    def _load(self, upload_id: str) -> Upload:
        if not ID_PATTERN.fullmatch(upload_id):
            raise NotFound(f"upload {upload_id[:64]!r} does not exist")
        try:
            record = json.loads(self._meta(upload_id).read_text())
        except (OSError, ValueError) as exc:
            raise NotFound(f"upload {upload_id!r} does not exist") from exc
        if record["sha256"]:
            offset = record["length"]
        else:
            try:
                offset = self.part(upload_id).stat().st_size
            except OSError as exc:
                raise NotFound(f"upload {upload_id!r} does not exist") from exc
        upload = Upload(offset=offset, **record)
        if not upload.finished and upload.expires <= self.clock():
            raise NotFound(f"upload {upload_id!r} has expired")
        return upload

    async def get(self, upload_id: str) -> Upload:
        """The upload and its offset; 404 when unknown or expired."""
        return await asyncio.to_thread(self._load, upload_id)

    async def append(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes | bytearray] | FileBody,
        checksum: ExpectedChecksum | None = None,
    ) -> Upload:
        """Append a PATCH body at ``offset``; the upload as it is after.

        409 when ``offset`` is not the upload's, 423 while another append runs, 413 when the
        body goes past the declared length, 460 when it does not match ``checksum``. A
        refused chunk leaves nothing behind. A body cut short (the client went away) keeps
        what arrived, unless a checksum was given (it cannot be verified then).
        """
        if upload_id in self._busy:
            raise UploadLocked(f"upload {upload_id!r} is being appended to by another request")
        self._busy.add(upload_id)
        try:
            return await self._append(upload_id, offset, chunks, checksum)
        finally:
            self._busy.discard(upload_id)

    async def _append(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes | bytearray] | FileBody,
        checksum: ExpectedChecksum | None,
    ) -> Upload:
        upload = await self.get(upload_id)
        if upload.finished or offset != upload.offset:
            raise OffsetMismatch(
                f"Upload-Offset is {offset}; the upload is at {upload.offset}",
                offset=upload.offset,
            )
        progress = await self._progress_at(upload_id, offset)
        before = progress.hasher.copy()
        chunk_hasher = checksum.hasher() if checksum is not None else None
        if isinstance(chunks, FileBody) and offset + chunks.length > upload.length:
            chunks.refuse()
            raise PayloadTooLarge(
                f"the body goes past Upload-Length ({upload.length} bytes)", limit=upload.length
            )
        handle = await asyncio.to_thread(self.part(upload_id).open, "r+b")
        try:
            if isinstance(chunks, FileBody):
                written = await _move(handle, offset, chunks, [progress.hasher, chunk_hasher])
            else:
                written = await _write(
                    handle, offset, upload.length, chunks, progress.hasher, chunk_hasher
                )
            if (
                checksum is not None
                and chunk_hasher is not None
                and (chunk_hasher.digest() != checksum.digest)
            ):
                raise ChecksumMismatch(
                    f"the chunk's {checksum.algorithm} is not the Upload-Checksum's"
                )
        except BaseException:
            # Nothing of a refused chunk stays: cut the part back to where it was.
            await asyncio.to_thread(_truncate, handle, offset)
            self._progress[upload_id] = _Progress(offset, before)
            raise
        finally:
            await asyncio.to_thread(_sync_and_close, handle)
        progress.offset = offset + written
        return dataclasses.replace(upload, offset=progress.offset)

    async def _progress_at(self, upload_id: str, offset: int) -> _Progress:
        progress = self._progress.get(upload_id)
        if progress is None or progress.offset != offset:
            hasher = await asyncio.to_thread(_hash_prefix, self.part(upload_id), offset)
            progress = _Progress(offset, hasher)
            self._progress[upload_id] = progress
        return progress

    async def digest(self, upload_id: str) -> str:
        """The SHA-256 of a complete upload's bytes."""
        upload = await self.get(upload_id)
        progress = await self._progress_at(upload_id, upload.offset)
        return str(progress.hasher.hexdigest())

    async def mark_finished(self, upload: Upload, sha256: str) -> Upload:
        """Record that ``upload`` is stored as ``sha256`` (its part is gone)."""
        finished = dataclasses.replace(upload, sha256=sha256, offset=upload.length)
        await asyncio.to_thread(self._write_meta, finished)
        self._progress.pop(upload.id, None)
        return finished

    async def terminate(self, upload_id: str) -> None:
        """Remove an upload (tus termination); 404 when unknown, 423 while appended to."""
        await self.get(upload_id)
        if upload_id in self._busy:
            raise UploadLocked(f"upload {upload_id!r} is being appended to by another request")
        self._progress.pop(upload_id, None)

        def remove() -> None:
            self.part(upload_id).unlink(missing_ok=True)
            self._meta(upload_id).unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def expire(self) -> int:
        """Remove unfinished uploads past their expiry and finished records past it too."""

        def sweep() -> int:
            removed = 0
            now = self.clock()
            for meta in self.root.glob("*.json"):
                try:
                    record = json.loads(meta.read_text())
                except (OSError, ValueError):
                    continue
                if record["expires"] <= now and record["id"] not in self._busy:
                    self.part(record["id"]).unlink(missing_ok=True)
                    meta.unlink(missing_ok=True)
                    self._progress.pop(record["id"], None)
                    removed += 1
            return removed

        if not self.root.exists():
            return 0
        return await asyncio.to_thread(sweep)


async def _write(
    handle: Any,
    offset: int,
    length: int,
    chunks: AsyncIterator[bytes | bytearray],
    hasher: Any,
    chunk_hasher: Any,
) -> int:
    """Write a body that arrives as chunks at ``offset``, hashing it; the count written.
    413 past ``length``. On any error, returns only once no thread writes any more."""
    written = 0
    writer = _Writer(handle, hasher, chunk_hasher)
    try:
        await asyncio.to_thread(handle.seek, offset)
        batch: list[bytes | bytearray] = []
        pending = 0
        async for chunk in chunks:
            if offset + written + pending + len(chunk) > length:
                raise PayloadTooLarge(
                    f"the body goes past Upload-Length ({length} bytes)", limit=length
                )
            batch.append(chunk)
            pending += len(chunk)
            if pending >= WRITE_BATCH:
                await writer.put(_joined(batch))
                written += pending
                batch, pending = [], 0
        await writer.put(_joined(batch))
        written += pending
        await writer.finish()
    except BaseException:
        await writer.finish(failed=True)
        raise
    return written


async def _move(handle: Any, offset: int, body: FileBody, hashers: list[Any]) -> int:
    """Let a body write itself at ``offset`` (ADR 0057), hashing it from the file as it
    lands; the count written. On any error, returns only once no thread works on it."""
    fd = handle.fileno()
    hasher = RangeHasher(fd, offset, [each for each in hashers if each is not None])
    flusher = Flusher(fd)

    def moved(total: int) -> None:
        hasher.moved(total)
        flusher.wrote(total)

    try:
        written = await body.into_file(fd, offset, moved)
    except BaseException:
        await hasher.finish(failed=True)
        raise
    await hasher.finish()
    return written


class _Writer:
    """Writes batches on one thread and hashes them on another while the next batch is
    received (ADR 0055: once the event loop no longer copies the body, write + hash in one
    thread is the slowest stage).

    At most :data:`PIPELINE` batches wait for each, so a fast client cannot fill the memory:
    receiving stops (and TCP flow control slows the client) until the disk catches up.
    Batches are not changed after :meth:`put`, so both threads read the same buffer.
    """

    def __init__(self, handle: Any, hasher: Any, chunk_hasher: Any) -> None:
        self._error: Exception | None = None
        self._queues: list[asyncio.Queue[bytes | bytearray | None]] = [
            asyncio.Queue(maxsize=PIPELINE),
            asyncio.Queue(maxsize=PIPELINE),
        ]
        self._tasks = [
            asyncio.create_task(self._run(self._queues[0], _write_into(handle))),
            asyncio.create_task(self._run(self._queues[1], _hash_into(hasher, chunk_hasher))),
        ]

    async def _run(
        self, queue: asyncio.Queue[bytes | bytearray | None], work: Callable[[Any], object]
    ) -> None:
        # After a failure the queue is still drained, so that put() never waits forever.
        while (data := await queue.get()) is not None:
            if self._error is None:
                try:
                    await asyncio.to_thread(work, data)
                except Exception as exc:
                    self._error = exc

    async def put(self, data: bytes | bytearray) -> None:
        """Queue ``data``; raises the writer's error if it failed."""
        if self._error is not None:
            raise self._error
        if data:
            for queue in self._queues:
                await queue.put(data)

    async def finish(self, failed: bool = False) -> None:
        """Wait until every queued batch is written and hashed (``failed``: drop those not
        started).

        Never cancels a write under way: the caller truncates the file after this returns,
        which must not race a thread still writing.
        """
        for queue in self._queues:
            if failed:
                while not queue.empty():
                    queue.get_nowait()
            await queue.put(None)
        await asyncio.gather(*self._tasks)
        if self._error is not None and not failed:
            raise self._error


def _write_into(handle: Any) -> Callable[[bytes | bytearray], None]:
    """What the writing thread does with a batch: write it, flushing in the background as
    it goes (:class:`~breakwater.files.direct_bodies.Flusher`)."""
    flusher = Flusher(handle.fileno())
    total = 0

    def write(data: bytes | bytearray) -> None:
        nonlocal total
        handle.write(data)
        handle.flush()
        total += len(data)
        flusher.wrote(total)

    return write


def _hash_into(hasher: Any, chunk_hasher: Any) -> Callable[[bytes | bytearray], None]:
    """What the hashing thread does with a batch: the upload's SHA-256, and the chunk's
    ``Upload-Checksum`` digest when one was sent."""

    def update(data: bytes | bytearray) -> None:
        hasher.update(data)
        if chunk_hasher is not None:
            chunk_hasher.update(data)

    return update


def _joined(batch: list[bytes | bytearray]) -> bytes | bytearray:
    """One buffer of the batch; a batch of one (a 1 MiB socket read) is not copied."""
    return batch[0] if len(batch) == 1 else b"".join(batch)


def _truncate(handle: Any, offset: int) -> None:
    handle.flush()
    handle.truncate(offset)


def _sync_and_close(handle: Any) -> None:
    try:
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        handle.close()


def _hash_prefix(path: Path, length: int) -> Any:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        left = length
        while left > 0:
            block = handle.read(min(WRITE_BATCH, left))
            if not block:
                break
            hasher.update(block)
            left -= len(block)
    return hasher
