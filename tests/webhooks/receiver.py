"""A real HTTP receiver on loopback whose behaviour a test switches: answer, fail or hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["ok", "fail", "hang"]


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    headers: dict[str, str]
    body: bytes
    answered: int | None
    """The status it was answered with (None: it was left hanging)."""


@dataclass
class Receiver:
    """HTTP/1.1 on 127.0.0.1: ``mode`` decides each answer (200, 503, or no answer)."""

    mode: Mode = "ok"
    refuse: Callable[[bytes], bool] | None = None
    """When set, a body it returns True for is answered 503 whatever the mode."""
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def _record(self, received: Received) -> None:
        self.requests.append(received)
        self._arrived.set()
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

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

    def delivered(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.requests if r.answered == 200]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait (up to 30 s) until ``predicate()`` is true, checked as each request arrives."""
        async with asyncio.timeout(30):
            while not predicate():
                await self._arrived.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {}
                for line in lines:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                mode = self.mode
                if mode == "hang":
                    self._record(Received(headers, body, None))
                    await asyncio.sleep(3600)
                refused = self.refuse is not None and self.refuse(body)
                status = 200 if mode == "ok" and not refused else 503
                self._record(Received(headers, body, status))
                reason = b"OK" if status == 200 else b"Service Unavailable"
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n" % (status, reason))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
