"""PATCH bodies of many write batches (written and hashed in a thread while the next is
received): the running hash carries on across PATCHes and restarts, and a refused body
leaves neither bytes nor hash."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from breakwater.core.errors import ChecksumMismatch, PayloadTooLarge
from breakwater.files.checksums import parse_checksum
from breakwater.files.uploads import WRITE_BATCH, Uploads

PIECE = 256 * 1024
"""What a request body arrives in."""
SIZE = 19 * WRITE_BATCH + 12_345
"""Many batches (more than the pipeline holds), ending mid-batch."""


def _data(size: int = SIZE) -> bytes:
    return hashlib.shake_256(b"pipeline").digest(size)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(data), PIECE):
        yield data[at : at + PIECE]


async def test_an_upload_resumed_across_patches_and_a_restart_is_named_by_its_hash(
    tmp_path: Path,
) -> None:
    """Three PATCHes, the node restarted between the last two: the exact bytes and hash."""
    data = _data()
    cuts = [0, 8 * WRITE_BATCH + 5, 16 * WRITE_BATCH + 7, SIZE]
    uploads = Uploads(tmp_path, lifetime=3600)
    upload = await uploads.create(SIZE, "photos", "u1", "image/png", "")
    for index, (start, stop) in enumerate(itertools.pairwise(cuts)):
        if index == 2:  # a new process: the running hash is rebuilt from the part file
            uploads = Uploads(tmp_path, lifetime=3600)
        upload = await uploads.append(upload.id, start, _body(data[start:stop]))
        assert upload.offset == stop
    assert await uploads.digest(upload.id) == hashlib.sha256(data).hexdigest()
    assert uploads.part(upload.id).read_bytes() == data


async def test_a_chunk_refused_by_its_checksum_leaves_the_running_hash_as_it_was(
    tmp_path: Path,
) -> None:
    """A many-batch chunk with a wrong checksum is 460; resent right, the hash is the file's."""
    data = _data()
    half = SIZE // 2
    uploads = Uploads(tmp_path, lifetime=3600)
    upload = await uploads.create(SIZE, "photos", "u1", "image/png", "")
    await uploads.append(upload.id, 0, _body(data[:half]))
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    with pytest.raises(ChecksumMismatch):
        await uploads.append(upload.id, half, _body(data[half:]), parse_checksum(f"sha1 {wrong}"))
    assert (await uploads.get(upload.id)).offset == half
    right = base64.b64encode(hashlib.sha1(data[half:]).digest()).decode()
    await uploads.append(upload.id, half, _body(data[half:]), parse_checksum(f"sha1 {right}"))
    assert await uploads.digest(upload.id) == hashlib.sha256(data).hexdigest()


async def test_a_body_past_the_length_after_many_batches_keeps_nothing_of_it(
    tmp_path: Path,
) -> None:
    """413 once the body passes Upload-Length; the batches already written are cut off."""
    data = _data(SIZE + PIECE)
    uploads = Uploads(tmp_path, lifetime=3600)
    upload = await uploads.create(SIZE, "photos", "u1", "image/png", "")
    await uploads.append(upload.id, 0, _body(data[:PIECE]))
    with pytest.raises(PayloadTooLarge):
        await uploads.append(upload.id, PIECE, _body(data[PIECE:]))
    assert uploads.part(upload.id).stat().st_size == PIECE
    await uploads.append(upload.id, PIECE, _body(data[PIECE:SIZE]))
    assert await uploads.digest(upload.id) == hashlib.sha256(data[:SIZE]).hexdigest()
