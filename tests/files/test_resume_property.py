"""An upload cut at random points, with node restarts between the pieces, completes with the
exact bytes (hypothesis over the cut points)."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.files.blobs import CHUNK, BlobInfo
from breakwater.files.disk import DiskBlobs
from breakwater.files.uploads import Uploads

SIZE = 300_000


async def _cut_body(data: bytes, start: int, stop: int, piece: int) -> AsyncIterator[bytes]:
    """What the route hands over when a client's body ends at ``stop`` (a dropped
    connection ends the stream, see files_api._body), in network-sized pieces."""
    for at in range(start, stop, piece):
        yield data[at : min(at + piece, stop)]


async def _run(root: Path, data: bytes, cuts: list[int], restarts: list[bool], piece: int) -> str:
    uploads = Uploads(root / "uploads", lifetime=3600)
    upload = await uploads.create(len(data), "photos", "u1", "image/png", "")
    stops = [*sorted(cuts), len(data)]
    restarts = [*restarts, *[False] * len(stops)][: len(stops)]
    for cut, restart in zip(stops, restarts, strict=True):
        if restart:  # a new process: the running hash is gone, the part file stays
            uploads = Uploads(root / "uploads", lifetime=3600)
        offset = (await uploads.get(upload.id)).offset  # tus HEAD
        upload = await uploads.append(upload.id, offset, _cut_body(data, offset, cut, piece))
        assert upload.offset == max(offset, cut)
    assert upload.offset == len(data)
    name = await uploads.digest(upload.id)
    blobs = DiskBlobs(root / "blobs")
    await blobs.put(uploads.part(upload.id), BlobInfo(name, len(data), "image/png", "p", "u", 0))
    stored = b"".join([chunk async for chunk in blobs.read(name, 0, len(data))])
    assert stored == data
    return name


@settings(max_examples=40, deadline=None)
@given(
    seed=st.binary(min_size=1, max_size=64),
    cuts=st.lists(st.integers(min_value=0, max_value=SIZE), max_size=6),
    restarts=st.lists(st.booleans(), max_size=6),
    piece=st.sampled_from([1_000, 65_536, CHUNK + 7]),
)
def test_an_upload_cut_anywhere_and_resumed_stores_the_exact_bytes(
    seed: bytes, cuts: list[int], restarts: list[bool], piece: int
) -> None:
    """Whatever the cut points and restarts, the stored file is the bytes, named by their hash."""
    data = hashlib.shake_256(seed).digest(SIZE)
    with tempfile.TemporaryDirectory() as directory:
        name = asyncio.run(_run(Path(directory), data, cuts, restarts, piece))
    assert name == hashlib.sha256(data).hexdigest()
