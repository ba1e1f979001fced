"""An HTTP/1.1 receiver on 127.0.0.1 for webhook deliveries: the benchmark's and the tests'.

Each request is read whole (head up to its blank line, then ``Content-Length`` bytes) and
answered with the status :meth:`LoopbackReceiver.answer` returns; keep-alive connections are
served until the peer closes. Subclasses decide what to note and how to answer.
"""

from __future__ import annotations

import asyncio

REASONS = {200: b"OK", 503: b"Service Unavailable"}


class LoopbackReceiver:
    """Serves on a free loopback port; :meth:`aclose` ends every open connection."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in self._handlers:
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def answer(self, headers: dict[str, str], body: bytes) -> int:
        """The status for one request (it may wait: a receiver that hangs)."""
        return 200

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = await self.answer(headers, body)
                reason = REASONS.get(status, b"Unknown")
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n" % (status, reason))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
