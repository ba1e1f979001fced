"""The coalescing transport: the same bytes in the same order, fewer writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest
import uvloop

from breakwater.server.coalescing import CoalescingTransport

LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
"""Socket tests run on the standard loop and on uvloop (what ``breakwater serve`` runs)."""
Run = Callable[[Coroutine[Any, Any, None]], None]


class RecordingTransport:
    """Records writes and lifecycle calls like an asyncio transport would receive them."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else None


def wrap(real: RecordingTransport) -> CoalescingTransport:
    """A coalescing transport over ``real`` on the running loop."""
    return CoalescingTransport(cast(asyncio.Transport, real), asyncio.get_running_loop())


async def test_writes_of_one_loop_step_leave_as_one_write() -> None:
    """Head and body written in one step reach the socket as one write, in order."""
    real = RecordingTransport()
    transport = wrap(real)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b'{"ok":true}')
    assert real.writes == []
    assert transport.get_write_buffer_size() == 7 + 19 + 11
    await asyncio.sleep(0)
    assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"ok":true}']
    transport.write(b"next")
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"next"]


async def test_close_sends_what_is_pending_first() -> None:
    """Nothing written before ``close`` is lost."""
    real = RecordingTransport()
    transport = wrap(real)
    transport.write(b"bye")
    transport.close()
    await asyncio.sleep(0)
    assert real.events == ["write", "close"]
    assert real.writes == [b"bye"]


async def test_abort_drops_what_is_pending() -> None:
    """An abort sends nothing more, as on the real transport."""
    real = RecordingTransport()
    transport = wrap(real)
    transport.write(b"lost")
    transport.abort()
    await asyncio.sleep(0)
    assert real.events == ["abort"]


async def test_a_closing_transport_gets_no_more_writes() -> None:
    """Data pending when the peer went away is dropped, not written to a closed socket."""
    real = RecordingTransport()
    transport = wrap(real)
    transport.write(b"late")
    real.closing = True
    await asyncio.sleep(0)
    assert real.writes == []


async def test_everything_else_is_the_real_transport() -> None:
    """Attributes uvicorn reads come from the wrapped transport."""
    transport = wrap(RecordingTransport())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)


async def test_write_now_goes_straight_out_unless_bytes_are_pending() -> None:
    """A direct write skips the wait, but never overtakes bytes written before it."""
    real = RecordingTransport()
    transport = wrap(real)
    transport.write_now(b"frame-1")
    assert real.writes == [b"frame-1"]
    transport.write(b"pong")
    transport.write_now(b"frame-2")
    assert real.writes == [b"frame-1"]
    await asyncio.sleep(0)
    assert real.writes == [b"frame-1", b"pongframe-2"]


class Receiver(asyncio.Protocol):
    """The far end of a loopback connection: keeps every byte; reads only when resumed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def loopback() -> tuple[CoalescingTransport, Receiver, asyncio.Server]:
    """A coalescing transport on a real loopback connection, and the receiver at its far end."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.Transport] = loop.create_future()

    class Sender(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(cast(asyncio.Transport, transport))

    server = await loop.create_server(Sender, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, receiver = await loop.create_connection(Receiver, "127.0.0.1", port)
    transport = CoalescingTransport(await accepted, loop)
    assert transport._fd >= 0  # the direct path is the one under test
    return transport, receiver, server


async def received(receiver: Receiver, size: int) -> bytes:
    """What ``receiver`` holds once ``size`` bytes arrived (bounded wait)."""
    for _ in range(500):
        if len(receiver.data) >= size:
            break
        await asyncio.sleep(0.01)
    return bytes(receiver.data)


@LOOPS
def test_write_now_on_a_socket_keeps_the_order_with_pending_bytes(run: Run) -> None:
    """Straight to the socket when nothing waits; behind whatever was written before."""
    run(_write_now_on_a_socket_keeps_the_order_with_pending_bytes())


async def _write_now_on_a_socket_keeps_the_order_with_pending_bytes() -> None:
    transport, receiver, server = await loopback()
    try:
        transport.write_now(b"frame-1;")
        transport.write(b"pong;")
        transport.write_now(b"frame-2;")
        await asyncio.sleep(0)
        transport.write_now(b"frame-3;")
        expected = b"frame-1;pong;frame-2;frame-3;"
        assert await received(receiver, len(expected)) == expected
    finally:
        transport.close()
        server.close()


@LOOPS
def test_a_write_the_socket_cannot_take_whole_is_finished_by_the_transport(run: Run) -> None:
    """A partial write leaves the rest to the transport's buffer, and later direct writes
    queue behind it: the peer gets every byte in order once it reads."""
    run(_a_write_the_socket_cannot_take_whole_is_finished_by_the_transport())


async def _a_write_the_socket_cannot_take_whole_is_finished_by_the_transport() -> None:
    transport, receiver, server = await loopback()
    assert receiver.transport is not None
    receiver.transport.pause_reading()
    try:
        big = bytes(range(256)) * (16 * 1024)  # 4 MiB: more than both socket buffers
        transport.write_now(big)
        assert transport.get_write_buffer_size() > 0
        transport.write_now(b"after")
        receiver.transport.resume_reading()
        assert await received(receiver, len(big) + 5) == big + b"after"
    finally:
        transport.close()
        server.close()


@LOOPS
def test_write_now_to_a_peer_that_left_does_not_raise(run: Run) -> None:
    """The transport meets the error itself and closes; nothing is written after that."""
    run(_write_now_to_a_peer_that_left_does_not_raise())


async def _write_now_to_a_peer_that_left_does_not_raise() -> None:
    transport, receiver, server = await loopback()
    assert receiver.transport is not None
    receiver.transport.abort()
    await receiver.lost
    try:
        for _ in range(50):
            transport.write_now(b"x" * 1024)
            await asyncio.sleep(0.001)
        assert transport.is_closing()
        assert transport.write_now(b"late") is False  # the direct writer falls back to the pump
    finally:
        transport.close()
        server.close()


def test_a_tls_transport_is_never_written_to_directly() -> None:
    """Under TLS the socket carries ciphertext: no descriptor is taken for direct writes."""

    class Tls(RecordingTransport):
        def get_extra_info(self, name: str) -> Any:
            return object() if name in ("sslcontext", "socket") else None

    transport = CoalescingTransport(cast(asyncio.Transport, Tls()), cast(Any, None))
    assert transport._fd == -1
