"""The transport ladder: refused transports fall back, unreachable endpoints do not, and a
lower rung climbs back up after ``climb_back_after``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx
import pytest

from breakwater.client.errors import EndpointUnavailable, TransportRefused
from breakwater.client.transports import StreamContext, TransportLadder
from breakwater.client.transports.websocket import WebSocketTransport


class Scripted:
    """A transport whose behaviour the test switches: refuse, fail to connect, or stream."""

    def __init__(self, name: str, mode: str) -> None:
        self.name = name
        self.mode = mode

    async def listen(self, context: StreamContext) -> None:
        if self.mode == "refuse":
            raise TransportRefused(f"{self.name} refused")
        if self.mode == "down":
            raise EndpointUnavailable("connection refused")
        await asyncio.Event().wait()  # streams until cancelled


class Recorder:
    """The ladder's ``on_transport`` hook: records rungs, fires once ``done(names)`` holds."""

    def __init__(
        self,
        done: Callable[[list[str | None]], bool],
        also: Callable[[str | None], None] = lambda _name: None,
    ) -> None:
        self.names: list[str | None] = []
        self.done = done
        self.also = also
        self.reached = asyncio.Event()

    def __call__(self, name: str | None) -> None:
        self.names.append(name)
        self.also(name)
        if self.done(self.names):
            self.reached.set()


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


async def run_until(ladder: TransportLadder, recorder: Recorder) -> None:
    async def notify(_cursor: str) -> None:
        return None

    async with httpx.AsyncClient() as http:
        context = StreamContext("http://node", http, None, lambda: "", notify)
        task = asyncio.create_task(ladder.run(context))
        try:
            async with asyncio.timeout(5):
                await recorder.reached.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_refusals_fall_back_rung_by_rung() -> None:
    """WebSocket and SSE refused: the ladder ends on long-poll."""
    recorder = Recorder(lambda names: names[-1] == "long_poll")
    rungs = [
        Scripted("websocket", "refuse"),
        Scripted("sse", "refuse"),
        Scripted("long_poll", "ok"),
    ]
    ladder = TransportLadder(rungs, 300, on_transport=recorder, sleep=no_sleep)
    await run_until(ladder, recorder)
    assert recorder.names == ["websocket", "sse", "long_poll"]
    assert ladder.current == "long_poll"


async def test_unreachable_endpoint_does_not_fall_back() -> None:
    """Connection failures retry the same rung (the endpoint is down, not the transport), and
    each one tells the sync loop, whose failover moves the device (no wait for its poll)."""
    recorder = Recorder(lambda names: names.count(None) >= 5)
    rungs = [Scripted("websocket", "down"), Scripted("sse", "ok")]
    told: list[bool] = []
    ladder = TransportLadder(
        rungs, 300, on_transport=recorder, on_unavailable=lambda: told.append(True), sleep=no_sleep
    )
    await run_until(ladder, recorder)
    assert ladder.current == "websocket" and "sse" not in recorder.names
    assert len(told) == recorder.names.count(None)


async def test_climbs_back_to_websocket_once_it_works_again() -> None:
    """After climb_back_after on a lower rung the ladder tries the better transport again."""
    websocket = Scripted("websocket", "refuse")

    def proxy_fixed(name: str | None) -> None:
        if name == "sse":
            websocket.mode = "ok"  # the proxy got fixed while the client was on SSE

    recorder = Recorder(lambda names: names[-1] == "websocket" and len(names) > 1, proxy_fixed)
    ladder = TransportLadder(
        [websocket, Scripted("sse", "ok")], 0.05, on_transport=recorder, sleep=no_sleep
    )
    await run_until(ladder, recorder)
    assert recorder.names == ["websocket", "sse", "websocket"]


async def test_websocket_to_a_socket_closed_before_any_answer_is_unavailable_not_refused() -> None:
    """A proxy whose node died accepts and closes: that endpoint is down (the device fails
    over), not a refusal of WebSocket (which would only try WebSocket there again)."""

    async def close_at_once(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def http_without_upgrade(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def notify(_cursor: str) -> None:
        return None

    async def listen_to(handler: Callable[..., object]) -> BaseException:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient() as http:
                context = StreamContext(f"http://127.0.0.1:{port}", http, None, lambda: "", notify)
                with pytest.raises((EndpointUnavailable, TransportRefused)) as raised:
                    await WebSocketTransport().listen(context)
                return raised.value
        finally:
            server.close()
            await server.wait_closed()

    assert isinstance(await listen_to(close_at_once), EndpointUnavailable)
    assert isinstance(await listen_to(http_without_upgrade), TransportRefused)
