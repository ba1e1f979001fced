"""tus chunk bodies taken straight from the HTTP protocol (server/upload_bodies.py, ADR 0050),
on a node served by uvicorn on loopback: exact bytes across cuts, nothing left by a refused
body, a bounded buffer per body and a bounded number of such bodies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from breakwater.config import Config
from breakwater.files.uploads import Uploads
from breakwater.server import slow_clients, upload_bodies
from breakwater.server.app import create_app
from breakwater.server.runner import uvicorn_config
from breakwater.server.upload_bodies import HIGH_WATER, UploadBody, UploadSlots
from tests.conftest import free_port
from tests.files import tus
from tests.files.conftest import sha256

SIZE = 5 * HIGH_WATER + 777
READ = 256 * 1024
"""The most one socket read may add to a body past its mark (uvloop reads 256 KiB)."""


def _data(size: int = SIZE) -> bytes:
    return hashlib.shake_256(b"direct upload bodies").digest(size)


@dataclass
class Served:
    """A node on loopback, and the count of direct bodies its protocol shares."""

    url: str
    port: int
    slots: UploadSlots
    client: httpx.AsyncClient
    uploads: Uploads

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait (10 s at most) until ``check()``."""
        for _ in range(1000):
            if check():
                return
            await asyncio.sleep(0.01)
        raise TimeoutError("the node did not get there in 10 s")

    def idle(self) -> bool:
        """No direct body is open and no append runs."""
        return self.slots.taken == 0 and not self.uploads._busy


@pytest.fixture
async def serve(
    make_config: Callable[..., Config],
) -> AsyncIterator[Callable[[], Awaitable[Served]]]:
    """Serve an open-mode node with uvicorn, as ``breakwater serve`` does."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start() -> Served:
        port = free_port()
        config = make_config(port=port)
        app = create_app(config)
        server = uvicorn.Server(uvicorn_config(app, config))
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=url, timeout=30)
        running.append((server, task, client))
        slots: UploadSlots = server.config.http.upload_slots  # type: ignore[union-attr]
        return Served(url, port, slots, client, app.state.node.files.uploads)

    yield start
    for server, task, client in running:
        await client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass
class Feeds:
    """What direct bodies were fed: the bytes a body held after each chunk, and in all."""

    held: list[int]
    total: int = 0


@pytest.fixture
def feeds(monkeypatch: pytest.MonkeyPatch) -> Feeds:
    """Records every chunk fed to a direct body (so: that the path was taken)."""
    seen = Feeds([])
    feed = UploadBody.feed

    def recording(self: UploadBody, chunk: bytes) -> None:
        feed(self, chunk)
        seen.held.append(self._size)
        seen.total += len(chunk)

    monkeypatch.setattr(UploadBody, "feed", recording)
    return seen


async def _created(client: httpx.AsyncClient, length: int) -> str:
    response = await tus.create(client, length)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def _head(location: str, offset: int, length: int, extra: str = "") -> bytes:
    return (
        f"PATCH {location} HTTP/1.1\r\nHost: node\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: {tus.STREAM}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


async def test_an_upload_cut_at_random_points_and_resumed_has_the_exact_bytes(
    serve: Callable[[], Awaitable[Served]], feeds: Feeds
) -> None:
    """Three PATCHes dropped mid-body, each resumed from HEAD's offset, then one to the end:
    the file has the exact bytes, and no body ever held more than its mark and one read."""
    served = await serve()
    data = _data()
    location = await _created(served.client, SIZE)
    rng = random.Random(23)
    cuts = sorted(rng.sample(range(1, SIZE), 3))
    offset = 0
    for cut in cuts:
        offset = await tus.offset(served.client, location)
        _, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(_head(location, offset, SIZE - offset) + data[offset:cut])
        await writer.drain()
        await served.until(lambda cut=cut: feeds.total == cut)  # the node has every byte sent
        writer.close()
        await writer.wait_closed()
        await served.until(served.idle)
    offset = await tus.offset(served.client, location)
    assert offset == cuts[-1]
    done = await tus.patch(served.client, location, offset, data[offset:])
    assert done.status_code == 204, done.text
    assert done.headers["Breakwater-File"] == sha256(data)
    assert (await served.client.get(f"/v1/files/{sha256(data)}")).content == data
    assert feeds.held, "the PATCH bodies did not take the direct path"
    assert max(feeds.held) < HIGH_WATER + READ
    assert served.slots.taken == 0


@pytest.mark.parametrize("refusal", ["checksum", "too long"])
async def test_a_refused_body_leaves_nothing_and_the_connection_serves_the_next(
    serve: Callable[[], Awaitable[Served]], feeds: Feeds, refusal: str
) -> None:
    """A chunk refused after it arrived (460: wrong checksum; 413: past Upload-Length) leaves
    the offset where it was; the same connection then appends the chunk for real."""
    served = await serve()
    data = _data()
    location = await _created(served.client, SIZE)
    first = await tus.patch(served.client, location, 0, data[:HIGH_WATER])
    assert first.status_code == 204
    if refusal == "checksum":
        wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
        refused = await tus.patch(
            served.client,
            location,
            HIGH_WATER,
            data[HIGH_WATER:],
            headers={"Upload-Checksum": f"sha1 {wrong}"},
        )
        assert refused.status_code == 460
    else:
        refused = await tus.patch(
            served.client, location, HIGH_WATER, data[HIGH_WATER:] + b"one byte too many"
        )
        assert refused.status_code == 413
    assert await tus.offset(served.client, location) == HIGH_WATER
    done = await tus.patch(served.client, location, HIGH_WATER, data[HIGH_WATER:])
    assert done.status_code == 204
    assert done.headers["Breakwater-File"] == sha256(data)
    assert feeds.held
    assert served.slots.taken == 0


async def test_a_body_answered_before_it_is_read_is_dropped_and_the_connection_goes_on(
    serve: Callable[[], Awaitable[Served]],
) -> None:
    """A PATCH at the wrong offset is answered 409 at once; its body (several marks long) is
    read and dropped, and the next request on the connection is answered."""
    served = await serve()
    data = _data()
    location = await _created(served.client, SIZE)
    wrong = await tus.patch(served.client, location, 5, data[5:])
    assert wrong.status_code == 409
    assert wrong.headers["Upload-Offset"] == "0"
    done = await tus.patch(served.client, location, 0, data)
    assert done.headers["Breakwater-File"] == sha256(data)
    assert served.slots.taken == 0


async def test_expect_100_continue_is_answered_before_the_body_is_sent(
    serve: Callable[[], Awaitable[Served]], feeds: Feeds
) -> None:
    """A client that waits for ``100 Continue`` gets it, then its chunk is stored."""
    served = await serve()
    data = _data(3 * HIGH_WATER)
    location = await _created(served.client, len(data))
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(_head(location, 0, len(data), "Expect: 100-continue\r\n"))
    async with asyncio.timeout(10):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(data)
        answer = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 204")
    assert f"breakwater-file: {sha256(data)}".encode() in answer.lower()
    assert feeds.held


async def test_bodies_past_the_cap_go_through_asgi_and_the_slot_is_given_back(
    serve: Callable[[], Awaitable[Served]],
    feeds: Feeds,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With one slot, a second upload while the first holds it is stored all the same (through
    ASGI: no direct body is fed for it); the slot is free once the first connection drops."""
    monkeypatch.setattr(slow_clients, "MAX_BODIES", 1)
    served = await serve()
    assert served.slots.limit == 1
    data = _data()
    first = await _created(served.client, SIZE)
    second = await _created(served.client, SIZE)
    _, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(_head(first, 0, SIZE) + data[:1000])
    await writer.drain()
    await served.until(lambda: served.slots.taken == 1)
    fed = len(feeds.held)
    done = await tus.patch(served.client, second, 0, data)
    assert done.headers["Breakwater-File"] == sha256(data)
    assert len(feeds.held) == fed, "the second body took the direct path past the cap"
    assert served.slots.taken == 1
    writer.close()
    await writer.wait_closed()
    await served.until(served.idle)
    assert await tus.offset(served.client, first) == 1000


def test_only_tus_chunks_take_the_direct_path() -> None:
    """The route and media type that select a body, as the endpoints read them."""
    assert upload_bodies._UPLOAD_PATH.fullmatch("/v1/uploads/abc")
    assert upload_bodies._UPLOAD_PATH.fullmatch("/v1/uploads")
    assert not upload_bodies._UPLOAD_PATH.fullmatch("/v1/uploads/abc/more")
    assert not upload_bodies._UPLOAD_PATH.fullmatch("/v1/files/abc")
