"""One socket write per response instead of two.

uvicorn writes a response's head when the app starts it and the body when the app sends it:
two ``write`` system calls for every small JSON answer, which on a busy node with one-mutation
pushes cost about a tenth of the event loop's time. The transport handed to uvicorn here keeps
what is written during one event-loop step and writes it with one call at the end of the step
(``call_soon``), before the loop waits for anything: no added latency, the same bytes in the
same order. Everything else is the real transport's.

``write_now`` is the realtime fan-out's immediate write. When nothing is buffered it goes
straight to the socket with ``os.write``, which releases the GIL for the system call (uvloop's
``write`` holds it): a fan-out to 1,000 connections is mostly those system calls, and the
writer thread's group commit runs during them instead of waiting for the pass to end.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wraps an asyncio transport; writes within one loop step leave as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        self._fd = plain_socket_fd(transport)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))
        self._size += len(data)

    def write_now(self, data: bytes) -> bool:
        """Write at once (one call per message, as a fan-out to many sockets wants), unless
        earlier bytes are still pending: those go first, so the order never changes. False,
        and nothing written, once the transport is closing."""
        transport = self._transport
        if transport.is_closing():
            return False
        if self._pending:
            self.write(data)
        elif self._fd < 0 or transport.get_write_buffer_size():
            transport.write(data)
        else:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                written = 0
            except OSError:
                written = -1
                transport.write(data)  # the transport meets the same error and closes itself
            if 0 <= written < len(data):
                transport.write(data[written:])  # its buffer was empty: the order holds
        return True

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._size = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def plain_socket_fd(transport: asyncio.BaseTransport) -> int:
    """The descriptor of the socket under ``transport`` when writing to it is the same as
    writing through the transport (a plain socket, not TLS); else -1."""
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    try:
        return -1 if sock is None else int(sock.fileno())
    except (AttributeError, OSError, ValueError):
        return -1


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped = CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)  # type: ignore[arg-type]
