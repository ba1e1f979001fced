"""Bodies that write themselves into the part file (files/direct_bodies.py, ADR 0057): the
running hash, read back from the file, covers exactly the bytes stored, across a body cut
short, a checksum refused, a body past the length and a write that fails."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from breakwater.core.errors import ChecksumMismatch, PayloadTooLarge
from breakwater.files.checksums import parse_checksum
from breakwater.files.direct_bodies import READ_BACK, FileBody
from breakwater.files.uploads import Uploads

PIECE = 200_003
"""What one move writes (not a multiple of the read-back size)."""
SIZE = 7 * READ_BACK + 12_345


class _Body:
    """A :class:`FileBody` that writes ``data`` in pieces on a thread, as the socket path
    does; ``arrives`` bytes of it only (a client gone early), ``fail_at``: an OSError."""

    def __init__(self, data: bytes, arrives: int | None = None, fail_at: int | None = None) -> None:
        self.length = len(data)
        self.data = data[:arrives]
        self.fail_at = fail_at
        self.refused = False

    async def into_file(self, fd: int, offset: int, moved: Callable[[int], None]) -> int:
        def write() -> int:
            done = 0
            while done < len(self.data):
                if self.fail_at is not None and done >= self.fail_at:
                    raise OSError("disk full")
                done += os.pwrite(fd, self.data[done : done + PIECE], offset + done)
                moved(done)
            return done

        return await asyncio.to_thread(write)

    def refuse(self) -> None:
        self.refused = True


def _data(size: int = SIZE) -> bytes:
    return hashlib.shake_256(b"direct").digest(size)


def test_the_fake_is_a_file_body() -> None:
    """The fake below stands for the socket path through the same protocol."""
    assert isinstance(_Body(b"x"), FileBody)


async def test_bodies_cut_short_and_resumed_are_named_by_the_stored_bytes(
    tmp_path: Path,
) -> None:
    """A body cut mid-way keeps what arrived at the exact offset; the rest completes the
    file, whose hash (read back as the bytes landed) is that of the exact bytes."""
    data = _data()
    uploads = Uploads(tmp_path, lifetime=3600)
    upload = await uploads.create(SIZE, "photos", "u1", "image/png", "")
    cut = 3 * READ_BACK + 17
    upload = await uploads.append(upload.id, 0, _Body(data, arrives=cut))
    assert upload.offset == cut
    upload = await uploads.append(upload.id, cut, _Body(data[cut:]))
    assert upload.offset == SIZE
    assert uploads.part(upload.id).read_bytes() == data
    assert await uploads.digest(upload.id) == hashlib.sha256(data).hexdigest()


async def test_a_refused_checksum_or_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    """460 and a write error both cut the part back and restore the running hash."""
    data = _data()
    half = SIZE // 2
    uploads = Uploads(tmp_path, lifetime=3600)
    upload = await uploads.create(SIZE, "photos", "u1", "image/png", "")
    await uploads.append(upload.id, 0, _Body(data[:half]))
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    with pytest.raises(ChecksumMismatch):
        await uploads.append(upload.id, half, _Body(data[half:]), parse_checksum(f"sha1 {wrong}"))
    with pytest.raises(OSError, match="disk full"):
        await uploads.append(upload.id, half, _Body(data[half:], fail_at=2 * PIECE))
    assert uploads.part(upload.id).stat().st_size == half
    right = base64.b64encode(hashlib.sha1(data[half:]).digest()).decode()
    await uploads.append(upload.id, half, _Body(data[half:]), parse_checksum(f"sha1 {right}"))
    assert await uploads.digest(upload.id) == hashlib.sha256(data).hexdigest()


async def test_a_body_past_the_length_is_refused_unread(tmp_path: Path) -> None:
    """413 before a byte is written, and the body is told it will not be read."""
    data = _data(SIZE + 1)
    uploads = Uploads(tmp_path, lifetime=3600)
    upload = await uploads.create(SIZE, "photos", "u1", "image/png", "")
    body = _Body(data)
    with pytest.raises(PayloadTooLarge):
        await uploads.append(upload.id, 0, body)
    assert body.refused
    assert uploads.part(upload.id).stat().st_size == 0
