"""One contract for every blob store: disk and S3 (moto's real server) pass the same tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from breakwater.files.blobs import CHUNK, BlobInfo, BlobStore
from tests.files.conftest import sha256


def _info(data: bytes, collection: str = "photos", created: float = 1000.0) -> BlobInfo:
    return BlobInfo(
        sha256=sha256(data),
        size=len(data),
        content_type="image/png",
        collection=collection,
        uploader="u1",
        created=created,
    )


def _source(tmp_path: Path, data: bytes, name: str = "upload.part") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def _read(blobs: BlobStore, name: str, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in blobs.read(name, start, end)])


async def test_a_stored_blob_is_described_and_read_back_whole(
    blobs: BlobStore, tmp_path: Path
) -> None:
    """put stores the bytes and their info, and removes the local source."""
    data = bytes(range(256)) * 5000
    source = _source(tmp_path, data)
    info = await blobs.put(source, _info(data))
    assert info == _info(data)
    assert not source.exists()
    assert await blobs.stat(info.sha256) == _info(data)
    assert await _read(blobs, info.sha256, 0, len(data)) == data


async def test_any_byte_range_reads_exactly_those_bytes(blobs: BlobStore, tmp_path: Path) -> None:
    """read(start, end) gives bytes [start, end), across chunk boundaries too."""
    data = bytes(range(251)) * ((CHUNK * 2) // 251 + 3)
    info = await blobs.put(_source(tmp_path, data), _info(data))
    for start, end in [(0, 1), (5, 17), (CHUNK - 3, CHUNK + 3), (len(data) - 1, len(data))]:
        assert await _read(blobs, info.sha256, start, end) == data[start:end]


async def test_the_same_bytes_twice_keep_the_first_info(blobs: BlobStore, tmp_path: Path) -> None:
    """put is idempotent: a second copy is dropped and the first upload's info stays."""
    data = b"same bytes"
    await blobs.put(_source(tmp_path, data, "a"), _info(data, "first"))
    second = _source(tmp_path, data, "b")
    info = await blobs.put(second, _info(data, "second", created=2000.0))
    assert info.collection == "first"
    assert not second.exists()


async def test_an_unknown_or_malformed_name_has_no_blob(blobs: BlobStore) -> None:
    """stat of a hash never stored, or of something that is no hash, is None."""
    assert await blobs.stat("0" * 64) is None
    assert await blobs.stat("../../etc/passwd") is None


async def test_delete_removes_a_blob_once(blobs: BlobStore, tmp_path: Path) -> None:
    """delete says whether there was a blob; after it, the blob is gone."""
    data = b"to be deleted"
    info = await blobs.put(_source(tmp_path, data), _info(data))
    assert await blobs.delete(info.sha256) is True
    assert await blobs.stat(info.sha256) is None
    assert await blobs.delete(info.sha256) is False


async def test_blobs_lists_every_stored_blob(blobs: BlobStore, tmp_path: Path) -> None:
    """blobs() yields the info of each stored blob once."""
    datas = [f"file {i}".encode() for i in range(3)]
    for i, data in enumerate(datas):
        await blobs.put(_source(tmp_path, data, str(i)), _info(data))
    listed = sorted([info async for info in blobs.blobs()], key=lambda info: info.sha256)
    expected = sorted((_info(d) for d in datas), key=lambda info: info.sha256)
    assert listed == expected
    assert all(dataclasses.asdict(info)["size"] > 0 for info in listed)
