"""The coalescing transport: the same bytes in the same order, fewer writes."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from breakwater.server.coalescing import CoalescingTransport


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
