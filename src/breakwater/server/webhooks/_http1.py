"""A lean HTTP/1.1 client for deliveries: ``POST`` a body, read the status, keep the connection.

Why not httpx: a delivery needs only the status code, and httpx's request and response models
cost about 1.9 ms of CPU per delivery on the benchmark machine, which at 500 deliveries/s is a
core taken from the node's event loop (ADR 0025, docs/benchmarks.md#webhooks). This client
writes the request in one buffer, reads the status line and headers, and reuses the connection
when the answer says how long its body is (a small one is read and dropped; a large, chunked
or unsized one closes the connection instead of being read).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
"""Longest status line and headers of an answer."""
MAX_DRAINED_BODY = 64 * 1024
"""Largest answer body read to keep the connection; a larger one closes it."""
IDLE_PER_HOST = 32

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ProtocolError(Exception):
    """The receiver's answer is not HTTP/1.x."""


class _Stale(Exception):
    """A kept-alive connection was closed by the receiver before it answered."""


class Http1Client:
    """``POST`` over kept-alive HTTP/1.1 connections, one pool per scheme, host and port."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context or ssl.create_default_context()
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> int:
        """Send ``body`` to ``url``; the answer's status code. The caller bounds the time."""
        parts = urlsplit(url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        key = (parts.scheme, host, port)
        idle = self._idle.setdefault(key, [])
        while idle:  # a kept-alive connection the receiver closed meanwhile: try the next
            connection = idle.pop()
            try:
                return await self._exchange(key, connection, request)
            except _Stale:
                continue
        reader, writer = await asyncio.open_connection(
            host, port, ssl=self._ssl if https else None, server_hostname=host if https else None
        )
        try:
            return await self._exchange(key, (reader, writer), request)
        except _Stale as stale:
            raise ConnectionResetError("the receiver closed the connection") from stale

    async def _exchange(
        self, key: tuple[str, str, int], connection: Connection, request: bytes
    ) -> int:
        reader, writer = connection
        keep = done = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
            except ConnectionError as error:  # reset or broken before any answer
                raise _Stale from error
            except asyncio.IncompleteReadError as error:
                if not error.partial:  # closed before any answer
                    raise _Stale from error
                raise
            while True:
                status, sized, keep = _parse_head(head)
                if not 100 <= status < 200:
                    break
                head = await reader.readuntil(b"\r\n\r\n")
            if keep and sized is not None:
                await reader.readexactly(sized)
            else:
                keep = False
            done = True
            return status
        except (asyncio.LimitOverrunError, ValueError) as error:
            raise ProtocolError(str(error)) from error
        finally:
            idle = self._idle.setdefault(key, [])
            if done and keep and len(idle) < IDLE_PER_HOST:
                idle.append(connection)
            else:
                writer.close()

    async def aclose(self) -> None:
        """Close every kept connection."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, writer in connections:
                writer.close()


def _parse_head(head: bytes) -> tuple[int, int | None, bool]:
    """Status, body length to drain (None: not known or too large), and whether to keep."""
    if len(head) > MAX_HEAD:
        raise ValueError("the answer's head is too long")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError("not an HTTP/1.x status line")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    status = int(rest[:3])
    length = headers.get("content-length")
    sized = int(length) if length is not None and length.isdigit() else None
    if status in (204, 304):
        sized = 0  # never a body
    if sized is not None and sized > MAX_DRAINED_BODY:
        sized = None
    keep = (
        version == "HTTP/1.1"
        and headers.get("connection", "").lower() != "close"
        and "transfer-encoding" not in headers
    )
    return status, sized, keep
