"""A region's copier of referred files: found by the start-up scan, asked for again until a peer
has the bytes, stored once under their name."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from breakwater.core.mutation import Mutation
from breakwater.core.topology import Peer
from breakwater.files.disk import DiskBlobs
from breakwater.replication.files import INFO_HEADER, PeerFiles
from breakwater.server.application.file_copies import FileCopies
from breakwater.server.application.file_metrics import FileMetrics
from breakwater.storage.sqlite import SqliteStore

DATA = b"a photo uploaded after the document that refers to it"
SHA = hashlib.sha256(DATA).hexdigest()
INFO = {"content_type": "image/png", "collection": "photos", "uploader": "u1", "created": 1.0}


class PeerRegion:
    """A peer that lacks the file until ``uploaded`` and counts the requests for it."""

    def __init__(self) -> None:
        self.uploaded = False
        self.requests = 0

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if not self.uploaded:
            return httpx.Response(404, json={"type": "not_found"})
        headers = {INFO_HEADER: json.dumps(INFO)}
        return httpx.Response(200, stream=httpx.ByteStream(DATA), headers=headers)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (30 s at most) until ``condition()`` holds."""
    async with asyncio.timeout(30):  # the copier has no event to wait on: poll
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def copier(
    store: SqliteStore, tmp_path: Path
) -> AsyncIterator[tuple[FileCopies, PeerRegion, DiskBlobs]]:
    peer = PeerRegion()
    files = PeerFiles(
        Peer("eu", ("http://eu.test",), (), key="k"),
        "us",
        transport=httpx.MockTransport(peer.answer),
    )
    blobs = DiskBlobs(tmp_path / "blobs")
    copies = FileCopies(
        blobs, store, [files], tmp_path / "incoming", FileMetrics(), retry_base=0.01, retry_cap=0.05
    )
    yield copies, peer, blobs
    await copies.aclose()


async def test_a_reference_found_at_start_is_copied_once_the_bytes_exist(
    store: SqliteStore, copier: tuple[FileCopies, PeerRegion, DiskBlobs]
) -> None:
    """The scan finds the reference; the peer answers 404 until the upload, then the copier
    stores the verified bytes under their name and stops asking."""
    copies, peer, blobs = copier
    await store.apply([Mutation("m1", "photos", "p1", "set", {"image": {"$file": SHA}})])
    copies.restart({})
    await copies.start()
    await until(lambda: peer.requests >= 3)
    assert await blobs.stat(SHA) is None and SHA in copies.waiting
    peer.uploaded = True
    await until(lambda: not copies.waiting)
    info = await blobs.stat(SHA)
    assert info is not None and (info.size, info.content_type) == (len(DATA), "image/png")
    asked = peer.requests
    await asyncio.sleep(0.2)
    assert peer.requests == asked, "a stored file is not asked for again"
