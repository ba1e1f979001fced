"""A TCP proxy that can cut the answer to a push: the node commits, the client never hears.

When armed, the first bytes the node sends back for a ``POST /v1/sync/push`` trigger
``on_cut`` (the test SIGKILLs the node there, or does nothing) and both sides are closed without
forwarding them. With ``socket=True`` it is the realtime WebSocket's push instead: the first
bytes the node sends after a message the client sent while armed (arm it once the socket is up
and subscribed: the client's next message is then its push).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class CutProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_port``; :attr:`armed` cuts the next push answer."""

    def __init__(
        self, upstream_port: int, on_cut: Callable[[], None], *, socket: bool = False
    ) -> None:
        self.upstream_port = upstream_port
        self.on_cut = on_cut
        self.socket = socket
        self.armed = not socket
        self.cut = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        last_request = [b""]
        sent_armed = [False]

        async def client_to_node() -> None:
            while data := await reader.read(65536):
                if data[:4] in (b"POST", b"GET ", b"PUT ", b"PATC", b"DELE"):
                    last_request[0] = data.split(b"\r\n", 1)[0]
                elif self.socket and self.armed:
                    sent_armed[0] = last_request[0].startswith(b"GET /v1/realtime")
                up_writer.write(data)
                await up_writer.drain()

        def cuts() -> bool:
            if self.socket:
                return sent_armed[0]
            return self.armed and last_request[0].startswith(b"POST /v1/sync/push")

        async def node_to_client() -> None:
            while data := await up_reader.read(65536):
                if cuts():
                    self.armed = False
                    self.on_cut()
                    self.cut.set()
                    return
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(client_to_node()), asyncio.create_task(node_to_client())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()
