"""Uploads under faults: the blob store down at the last byte, two PATCHes at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.core.errors import Unavailable
from breakwater.files.blobs import BlobInfo, BlobStore
from tests.files import tus
from tests.files.conftest import sha256


class DownOnce:
    """A blob store whose first ``put`` fails as an unreachable one would."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.failures = 1

    async def put(self, source: Path, info: BlobInfo) -> BlobInfo:
        if self.failures:
            self.failures -= 1
            raise Unavailable("file storage cannot be reached")
        return await self.inner.put(source, info)

    async def stat(self, sha256: str) -> BlobInfo | None:
        return await self.inner.stat(sha256)

    def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.inner.read(sha256, start, end)

    async def delete(self, sha256: str) -> bool:
        return await self.inner.delete(sha256)

    def blobs(self) -> AsyncIterator[BlobInfo]:
        return self.inner.blobs()

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def client(make_client: Callable[..., Any], files_store: str) -> httpx.AsyncClient:
    """An open-mode node whose files go to each backend."""
    node: httpx.AsyncClient = await make_client(files_store=files_store)
    return node


async def test_a_store_down_at_the_last_byte_is_503_and_head_completes_it(
    client: httpx.AsyncClient,
) -> None:
    """The last PATCH answers 503 and keeps the bytes; the client's HEAD then stores the file."""
    files = client.app.state.node.files  # type: ignore[attr-defined]
    files.blobs = DownOnce(files.blobs)
    data = b"x" * 5000
    location = (await tus.create(client, len(data))).headers["Location"]
    failed = await tus.patch(client, location, 0, data)
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "1"
    head = await client.head(location, headers=tus.TUS)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == str(len(data))
    assert head.headers["Breakwater-File"] == sha256(data)
    assert (await client.get(f"/v1/files/{sha256(data)}")).content == data


async def test_a_second_patch_while_one_runs_is_423_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    """Two PATCHes of one upload at once: one appends, the other is 423 (locked)."""
    location = (await tus.create(client, 200_000)).headers["Location"]
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"a" * 50_000
        await release.wait()
        yield b"b" * 50_000

    first = asyncio.create_task(
        client.patch(
            location,
            content=slow_body(),
            headers={**tus.TUS, "Upload-Offset": "0", "Content-Type": tus.STREAM},
        )
    )
    await asyncio.sleep(0.2)
    second = await tus.patch(client, location, 0, b"c" * 10)
    assert second.status_code == 423
    assert second.json()["type"] == "upload_locked"
    release.set()
    assert (await first).headers["Upload-Offset"] == "100000"
    assert await tus.offset(client, location) == 100_000
