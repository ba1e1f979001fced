"""tus PATCH bodies read from the socket by a worker thread, not by the event loop.

ADR 0055. Through uvloop and httptools every byte of a request body is copied three times in
the event loop (kernel → read buffer → ``bytes`` → the parser's ``bytes``), and for a 100 MiB
upload that was the slowest stage (ADRs 0046, 0050). For a tus chunk (``PATCH
/v1/uploads/<id>`` with ``Content-Length``, no ``Transfer-Encoding``, on a plain socket)
:class:`SocketBodyProtocol` keeps what the parser delivers with the head in a
:class:`SocketBody`, reachable from ``scope["extensions"]``. When the endpoint starts reading
it, the transport stops reading and a thread of :data:`_READERS` reads exactly the rest of the
``Content-Length`` with ``readv`` from a duplicate of the socket's descriptor into fresh
1 MiB buffers; the event loop only passes each buffer on to the upload's writer thread. Once
the body is read, the parser is replaced by a new one (the old one still waits for the body)
and the transport reads again, so the connection goes on with its next request.

Contracts kept: an idle body past ``body_timeout`` ends with :meth:`body_stalled` (the node
answers 408 and closes); a client that goes away ends the body early (the upload keeps what
arrived, as on the ASGI path); a body the endpoint stops reading before its end (413, 460 on a
cut, an error) closes the connection after the answer, since nothing can tell where its next
request would start. A body the endpoint never reads goes through uvicorn as before.
At most :data:`MAX_BODIES` bodies per process take this path at once; the others use ASGI.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import threading
from collections.abc import AsyncIterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httptools

from breakwater.server.coalescing import CoalescingHttpToolsProtocol, plain_socket_fd

READ_SIZE = 1 << 20
"""Bytes one thread read fills before the buffer goes to the writer."""
HIGH_WATER = 1 << 20
"""Body bytes the parser may deliver before the endpoint reads them (then reading pauses)."""
MAX_BODIES = 8
"""Bodies read by threads at once in one process (the threads of :data:`_READERS`)."""
EXTENSION = "breakwater.socket_body"
_POLL_SLICE = 0.5
"""Seconds a reader waits at once, between looks at whether its body was abandoned."""
_TUS_PATCH = re.compile(r"/v1/uploads/[^/]+")
_READERS = ThreadPoolExecutor(MAX_BODIES, thread_name_prefix="socket-body")


class BodySlots:
    """Counts the bodies on this path; refuses one past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> bool:
        """Count one more body; False (not counted) when all slots are taken."""
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def give_back(self) -> None:
        """A body :meth:`take` counted has ended."""
        self.taken -= 1


class SocketBody:
    """One request body: the chunks the parser delivered, then the rest read by a thread."""

    def __init__(self, protocol: SocketBodyProtocol, fd: int, length: int) -> None:
        self._protocol = protocol
        self._cycle = protocol.cycle
        self._fd = fd
        self._length = length
        self._chunks: list[bytes] = []
        self._delivered = 0
        self._complete = False
        self._taken = False
        self._read_all = False
        self._dup = -1
        self._abandoned = threading.Event()

    def feed(self, chunk: bytes) -> None:
        """The parser has more of the body; stop reading the socket past the mark."""
        self._chunks.append(chunk)
        self._delivered += len(chunk)
        if self._delivered >= HIGH_WATER:
            self._protocol.flow.pause_reading()

    def parsed(self) -> None:
        """The parser has delivered the whole body (it came with the head)."""
        self._complete = True

    def abandon(self) -> None:
        """The connection is gone: a thread still reading stops at its next look."""
        self._abandoned.set()

    async def __aiter__(self) -> AsyncIterator[bytes | bytearray]:
        """The body's bytes; ends early when the client goes away or stalls."""
        protocol, cycle = self._protocol, self._cycle
        if self._taken:
            return
        self._taken = True
        transport = protocol.transport
        if cycle.waiting_for_100_continue and not transport.is_closing():
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        protocol.flow.pause_reading()
        for chunk in self._chunks:
            yield chunk
        self._chunks = []
        if self._complete:
            protocol.flow.resume_reading()
            return
        left = self._length - self._delivered
        fd = self._dup = os.dup(self._fd)
        loop = asyncio.get_running_loop()
        try:
            while left > 0 and not transport.is_closing():
                size = min(left, READ_SIZE)
                reading = loop.run_in_executor(
                    _READERS, _fill, fd, size, protocol.body_timeout, self._abandoned
                )
                try:
                    buffer, stalled = await asyncio.shield(reading)
                except asyncio.CancelledError:
                    # The thread still reads from the duplicate: close it once it is done.
                    self._abandoned.set()
                    self._dup = -1
                    reading.add_done_callback(lambda _: os.close(fd))
                    raise
                except OSError:
                    transport.close()
                    return
                short = len(buffer) < size
                left -= len(buffer)
                if buffer:
                    yield buffer
                if stalled:
                    protocol.body_stalled()
                    return
                if short:
                    transport.close()  # the client went away mid-body
                    return
        finally:
            self._close_dup()
        if left == 0 and not transport.is_closing():
            self._read_all = True
            protocol.socket_body_read()

    def end(self) -> None:
        """The endpoint is done with the body: one it stopped reading midway (or never
        read, once taken) leaves the connection unusable after the answer."""
        self._close_dup()
        if self._taken and not (self._complete or self._read_all):
            self._cycle.keep_alive = False

    def _close_dup(self) -> None:
        if self._dup >= 0:
            os.close(self._dup)
            self._dup = -1


def _fill(fd: int, size: int, timeout: float, abandoned: threading.Event) -> tuple[bytearray, bool]:
    """Up to ``size`` bytes from non-blocking ``fd``, fewer only at the end of the stream or
    when nothing arrived for ``timeout`` seconds (then True: the client stalled)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    idle = 0.0
    stalled = False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while got < size:
        try:
            count = os.readv(fd, [view[got:]])
        except BlockingIOError:
            if abandoned.is_set():
                break
            if poller.poll(int(_POLL_SLICE * 1000)):
                idle = 0.0
                continue
            idle += _POLL_SLICE
            if idle >= timeout:
                stalled = True
                break
            continue
        except ConnectionError:
            break
        if count == 0:
            break
        got += count
        idle = 0.0
    view.release()
    del buffer[got:]
    return buffer, stalled


def socket_body_of(scope: MutableMapping[str, Any]) -> SocketBody | None:
    """The request's body when a thread reads it, else None (read it through ASGI)."""
    body = scope.get("extensions", {}).get(EXTENSION)
    return body if isinstance(body, SocketBody) else None


class SocketBodyProtocol(CoalescingHttpToolsProtocol):
    """uvicorn's protocol, with tus PATCH bodies read by threads (see the module)."""

    body_timeout = 30.0
    body_slots: BodySlots | None = None
    _body: SocketBody | None = None

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        length = self._tus_patch_length()
        if length is None or self.body_slots is None:
            return
        fd = plain_socket_fd(self.transport)
        if fd < 0 or not self.body_slots.take():
            return
        self._body = SocketBody(self, fd, length)
        extensions: dict[str, object] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions[EXTENSION] = self._body

    def _tus_patch_length(self) -> int | None:
        scope = self.scope
        if scope.get("method") != "PATCH" or "path" not in scope:
            return None
        if not _TUS_PATCH.fullmatch(scope["path"][len(self.root_path) :]):
            return None
        length = None
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
        return length if length else None

    def on_body(self, body: bytes) -> None:
        held = self._body
        if held is None or self.cycle.response_complete:
            super().on_body(body)
        else:
            held.feed(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._body is not None:
            self._body.parsed()
        self._end_body()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._body is not None:
            self._body.abandon()
        self._end_body()
        super().connection_lost(exc)

    def socket_body_read(self) -> None:
        """A thread read the rest of the body: start a new parser (the old one waits for
        those bytes), end the message as the parser would have, read the socket again."""
        parser = httptools.HttpRequestParser(self)
        parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn's
        self.parser = parser
        self.on_message_complete()
        self.flow.resume_reading()

    def body_stalled(self) -> None:
        """The client stopped sending the body: the node's protocol answers 408."""
        self.transport.close()

    def _end_body(self) -> None:
        if self._body is not None and self.body_slots is not None:
            self._body = None
            self.body_slots.give_back()
