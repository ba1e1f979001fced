"""The SDK's offline upload queue: durable across restarts, resumes where the node is, reports
progress, and sets aside what the node refuses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.client.errors import EndpointUnavailable
from breakwater.client.upload_queue import QueuedFile, UploadQueue

DATA = hashlib.shake_256(b"photo").digest(300_000)
BASE = "http://node"


class Offline(httpx.AsyncBaseTransport):
    """No network at all."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("offline", request=request)


class CutAfter(httpx.AsyncBaseTransport):
    """Passes requests to ``inner``; the network goes away after ``patches`` PATCHes.
    Counts the bytes PATCHed."""

    def __init__(self, inner: httpx.AsyncBaseTransport, patches: int | None = None) -> None:
        self.inner = inner
        self.patches = patches
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            if self.patches is not None and self.patches <= 0:
                raise httpx.ConnectError("network lost", request=request)
            if self.patches is not None:
                self.patches -= 1
            self.sent += len(request.content)
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def node(make_client: Callable[..., Any]) -> httpx.AsyncClient:
    """An in-process open-mode node."""
    client: httpx.AsyncClient = await make_client()
    return client


def _queue(db: Path, transport: httpx.AsyncBaseTransport, chunk: int = 65_536) -> UploadQueue:
    async def no_sleep(_: float) -> None:
        return None

    http = httpx.AsyncClient(transport=transport)
    return UploadQueue(db, http, BASE, chunk_size=chunk, sleep=no_sleep)


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(DATA)
    return path


async def test_an_upload_queued_offline_is_sent_after_a_restart(
    node: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Enqueued offline, the app restarts, the network is back: the node gets the exact bytes
    and progress climbs to the size."""
    db = tmp_path / "device.db"
    offline = _queue(db, Offline())
    await offline.open()
    queued = await offline.enqueue(_photo(tmp_path), "photos", "image/png")
    assert queued.sha256 == hashlib.sha256(DATA).hexdigest()
    with pytest.raises(EndpointUnavailable):
        await offline.run_once()
    await offline.aclose()

    online = _queue(db, httpx.ASGITransport(app=node.app))  # type: ignore[attr-defined]
    await online.open()
    assert [f.sha256 for f in await online.queued()] == [queued.sha256]
    seen: list[int] = []

    def progress(file: QueuedFile, offset: int) -> None:
        seen.append(offset)

    assert await online.run(progress, max_attempts=3) == 1
    assert seen == sorted(seen)
    assert seen[-1] == len(DATA)
    assert await online.queued() == []
    await online.aclose()
    download = await node.get(f"/v1/files/{queued.sha256}")
    assert download.content == DATA


async def test_an_upload_cut_mid_way_resumes_from_the_nodes_offset(
    node: httpx.AsyncClient, tmp_path: Path
) -> None:
    """After the network drops and the app restarts, only the missing bytes are sent."""
    db = tmp_path / "device.db"
    asgi = httpx.ASGITransport(app=node.app)  # type: ignore[attr-defined]
    first = _queue(db, CutAfter(asgi, patches=2))
    await first.open()
    queued = await first.enqueue(_photo(tmp_path), "photos", "image/png")
    with pytest.raises(EndpointUnavailable):
        await first.run_once()
    await first.aclose()

    counting = CutAfter(asgi)
    second = _queue(db, counting)
    await second.open()
    assert await second.run_once() == 1
    await second.aclose()
    assert counting.sent == len(DATA) - 2 * 65_536
    assert (await node.get(f"/v1/files/{queued.sha256}")).content == DATA


async def test_a_file_the_node_refuses_is_set_aside_with_the_reason(
    node: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A type off the allow-list fails permanently: kept as failed, not retried."""
    queue = _queue(tmp_path / "device.db", httpx.ASGITransport(app=node.app))  # type: ignore[attr-defined]
    await queue.open()
    await queue.enqueue(_photo(tmp_path), "photos", "text/html")
    assert await queue.run(max_attempts=1) == 0
    [failed] = await queue.queued()
    assert failed.state == "failed"
    assert "text/html" in failed.problem
    assert await queue.run_once() == 0
    await queue.aclose()
