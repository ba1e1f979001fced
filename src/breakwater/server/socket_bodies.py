"""tus PATCH bodies read from the socket by a worker thread, not by the event loop.

ADR 0055. Through uvloop and httptools every byte of a request body is copied three times in
the event loop (kernel → read buffer → ``bytes`` → the parser's ``bytes``), and for a 100 MiB
upload that was the slowest stage (ADRs 0046, 0050). For a tus chunk (``PATCH
/v1/uploads/<id>`` with ``Content-Length``, no ``Transfer-Encoding``, on a plain socket)
:class:`SocketBodyProtocol` keeps what the parser delivers with the head in a
:class:`SocketBody`, reachable from ``scope["extensions"]``. When the endpoint starts reading
it into the upload's part file (:meth:`SocketBody.into_file`), the transport stops reading and
a thread of :data:`_READERS` moves exactly the rest of the ``Content-Length`` from a duplicate
of the socket's descriptor into the file with ``splice`` through a pipe (ADR 0057: one copy in
the kernel, no Python buffer; the event loop sees only the end). Once the body is read, the
parser is replaced by a new one (the old one still waits for the body) and the transport reads
again, so the connection goes on with its next request.

Contracts kept: an idle body past ``body_timeout`` ends with :meth:`body_stalled` (the node
answers 408 and closes); a client that goes away ends the body early (the upload keeps what
arrived, as on the ASGI path); a body the endpoint stops reading before its end (413, 460 on a
cut, an error) or refuses unread closes the connection after the answer, since nothing can
tell where its next request would start. A body the endpoint never reads goes through uvicorn
as before.
At most :data:`MAX_BODIES` bodies per process take this path at once; the others use ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import select
import threading
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httptools

from breakwater.files.direct_bodies import settled
from breakwater.server.coalescing import CoalescingHttpToolsProtocol, plain_socket_fd

PIPE_SIZE = 1 << 20
"""The pipe between socket and file: bytes moved per ``splice`` pair at most."""
HIGH_WATER = 1 << 20
"""Body bytes the parser may deliver before the endpoint reads them (then reading pauses)."""
MAX_BODIES = 8
"""Bodies read by threads at once in one process (the threads of :data:`_READERS`)."""
EXTENSION = "breakwater.socket_body"
_CAN_SPLICE = hasattr(os, "splice")
"""Linux: elsewhere every body goes through ASGI."""
_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 0)
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
    """One request body: the chunks the parser delivered, then the rest moved by a thread."""

    def __init__(self, protocol: SocketBodyProtocol, fd: int, length: int) -> None:
        self._protocol = protocol
        self._cycle = protocol.cycle
        self._fd = fd
        self.length = length
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

    def refuse(self) -> None:
        """The endpoint answers without reading the body: close the connection after."""
        self._taken = True

    async def into_file(self, fd: int, offset: int, moved: Callable[[int], None]) -> int:
        """Write the body into ``fd`` from ``offset`` (the
        :class:`~breakwater.files.direct_bodies.FileBody` contract): what the parser
        delivered first, then the rest socket → pipe → file on a thread of :data:`_READERS`.
        Ends early when the client goes away (the connection closes) or stalls (408)."""
        protocol, cycle = self._protocol, self._cycle
        if self._taken:
            return 0
        self._taken = True
        transport = protocol.transport
        if cycle.waiting_for_100_continue and not transport.is_closing():
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        protocol.flow.pause_reading()
        held = b"".join(self._chunks)
        self._chunks = []
        left = 0 if self._complete else self.length - self._delivered
        source = self._dup = os.dup(self._fd) if left else -1
        moving = asyncio.get_running_loop().run_in_executor(
            _READERS,
            _move,
            _Move(held, source, fd, offset, left, protocol.body_timeout, self._abandoned, moved),
        )
        try:
            await asyncio.wait([moving])
        except asyncio.CancelledError:
            self._abandoned.set()
            await settled(moving)
            raise
        finally:
            self._close_dup()
        written, stalled = moving.result()
        if self._complete:
            protocol.flow.resume_reading()
        elif stalled:
            protocol.body_stalled()
        elif written < len(held) + left:
            transport.close()  # the client went away mid-body
        elif not transport.is_closing():
            self._read_all = True
            protocol.socket_body_read()
        return written

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


@dataclass(frozen=True)
class _Move:
    """What a reading thread moves: ``held`` (what the parser delivered), then ``left``
    bytes from the non-blocking socket ``source``, into ``target`` from ``offset``."""

    held: bytes
    source: int
    target: int
    offset: int
    left: int
    timeout: float
    abandoned: threading.Event
    moved: Callable[[int], None]


def _move(job: _Move) -> tuple[int, bool]:
    """The bytes written, and True when nothing arrived for ``timeout`` seconds (the client
    stalled). Fewer than asked only at the end of the stream or when abandoned; an error of
    the target file is raised. Every byte taken from the socket is in the file on return."""
    written = 0
    at = job.offset
    while written < len(job.held):
        written += os.pwrite(job.target, job.held[written:], at + written)
    if written:
        job.moved(written)
    if not job.left:
        return written, False
    pipe_out, pipe_in = os.pipe()
    try:
        with contextlib.suppress(OSError):  # past the user's pipe quota: the default size
            fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        poller = select.poll()
        poller.register(job.source, select.POLLIN)
        left, idle = job.left, 0.0
        while left > 0 and not job.abandoned.is_set():
            try:
                count = os.splice(job.source, pipe_in, min(left, PIPE_SIZE), flags=_NONBLOCK)
            except BlockingIOError:
                if poller.poll(int(_POLL_SLICE * 1000)):
                    idle = 0.0
                    continue
                idle += _POLL_SLICE
                if idle >= job.timeout:
                    return written, True
                continue
            except ConnectionError:
                break
            if count == 0:
                break
            _drain(pipe_out, job.target, at + written, count)
            written += count
            left -= count
            idle = 0.0
            job.moved(written)
    finally:
        os.close(pipe_out)
        os.close(pipe_in)
    return written, False


def _drain(pipe: int, target: int, offset: int, count: int) -> None:
    """Move ``count`` bytes waiting in ``pipe`` into ``target`` at ``offset``."""
    while count:
        moved = os.splice(pipe, target, count, offset_dst=offset)
        if moved == 0:
            raise OSError(f"the pipe ended {count} bytes short")
        offset += moved
        count -= moved


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
        if fd < 0 or not _CAN_SPLICE or not self.body_slots.take():
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
