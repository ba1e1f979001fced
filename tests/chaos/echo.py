"""A loopback echo server that records what reached it, for proxy tests."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class EchoServer:
    """Echoes every chunk back; ``close_after`` bytes received makes it close the connection."""

    close_after: int | None = None
    chunks: list[bytes] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def received(self) -> bytes:
        return b"".join(self.chunks)

    async def start(self) -> EchoServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        seen = 0
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                self.chunks.append(data)
                writer.write(data)
                await writer.drain()
                seen += len(data)
                if self.close_after is not None and seen >= self.close_after:
                    break
        writer.close()
        self._handlers.discard(task)
