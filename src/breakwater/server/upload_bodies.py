"""tus upload bodies handed straight from the HTTP parser to the upload writer.

ADR 0050. Through ASGI, a request body reaches the app in messages of at most ~64 KiB more
than uvicorn's flow-control mark (64 KiB): each one is appended to a ``bytearray``, copied
into a ``bytes``, passed through the middleware and starlette's stream, and costs the event
loop a pause, a resume and a task switch. For a 100 MiB upload that path was the slowest
stage (ADR 0046). For a tus chunk (``PATCH /v1/uploads/<id>``, or the first chunk of a
``POST /v1/uploads``, with ``Content-Type: application/offset+octet-stream``),
:class:`DirectUploadProtocol` instead keeps the parser's chunks as they are in an
:class:`UploadBody`, reachable from the request's ``scope["extensions"]``, until
:data:`HIGH_WATER` bytes wait; the endpoint takes all waiting chunks at each wake-up.

Memory: an upload body holds at most :data:`HIGH_WATER` plus one socket read; at most
``UploadSlots.limit`` bodies per process take this path at once, the others go through ASGI
as before. The endpoint works the same either way (:func:`body_of` is None on the ASGI path).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from breakwater.server.coalescing import CoalescingHttpToolsProtocol

HIGH_WATER = 1 << 20
"""Bytes an upload body may hold before the socket stops being read."""
MAX_BODIES = 16
"""Upload bodies that take this path at once in one process (the rest use ASGI)."""
EXTENSION = "breakwater.upload_body"
_UPLOAD_PATH = re.compile(r"/v1/uploads(/[^/]+)?")
_CHUNK_TYPE = b"application/offset+octet-stream"


class UploadSlots:
    """Counts the upload bodies on this path; refuses one past ``limit``."""

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


class UploadBody:
    """The chunks of one request body, filled by the protocol and drained by the endpoint."""

    def __init__(self, protocol: DirectUploadProtocol) -> None:
        self._protocol = protocol
        self._cycle = protocol.cycle
        self._chunks: list[bytes] = []
        self._size = 0
        self._ended = False
        self._wake = asyncio.Event()

    def feed(self, chunk: bytes) -> None:
        """The parser has more of the body; stop reading the socket past the mark."""
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size >= HIGH_WATER:
            self._protocol.flow.pause_reading()
        self._wake.set()

    def end(self) -> None:
        """No more chunks: the body is complete, or the client went away."""
        self._ended = True
        self._wake.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The chunks as they arrive; ends early when the client goes away (keeping what
        came, as starlette's ``ClientDisconnect`` does on the ASGI path)."""
        protocol, cycle = self._protocol, self._cycle
        if cycle.waiting_for_100_continue and not protocol.transport.is_closing():
            protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        while True:
            if self._chunks:
                chunks, self._chunks, self._size = self._chunks, [], 0
                protocol.flow.resume_reading()
                for chunk in chunks:
                    yield chunk
                continue
            if self._ended:
                return
            self._wake.clear()
            protocol.flow.resume_reading()
            await self._wake.wait()


def body_of(scope: MutableMapping[str, Any]) -> UploadBody | None:
    """The request's upload body when it takes this path, else None (read it through ASGI)."""
    body = scope.get("extensions", {}).get(EXTENSION)
    return body if isinstance(body, UploadBody) else None


class DirectUploadProtocol(CoalescingHttpToolsProtocol):
    """uvicorn's protocol, with tus chunk bodies kept in an :class:`UploadBody`."""

    upload_slots: UploadSlots | None = None
    _upload: UploadBody | None = None

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.upload_slots is None or not self._is_tus_chunk():
            return
        if not self.upload_slots.take():
            return
        self._upload = UploadBody(self)
        extensions: dict[str, object] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions[EXTENSION] = self._upload

    def _is_tus_chunk(self) -> bool:
        scope = self.scope
        if scope.get("method") not in ("PATCH", "POST") or "path" not in scope:
            return False
        path = scope["path"][len(self.root_path) :]
        match = _UPLOAD_PATH.fullmatch(path)
        if match is None or (match.group(1) is None) != (scope["method"] == "POST"):
            return False
        return any(
            name == b"content-type" and value.split(b";")[0].strip().lower() == _CHUNK_TYPE
            for name, value in self.headers
        )

    def on_body(self, body: bytes) -> None:
        upload = self._upload
        if upload is None:
            super().on_body(body)
        elif not self.cycle.response_complete:
            upload.feed(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._end_upload()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_upload()
        super().connection_lost(exc)

    def _end_upload(self) -> None:
        if self._upload is not None and self.upload_slots is not None:
            self._upload.end()
            self._upload = None
            self.upload_slots.give_back()
