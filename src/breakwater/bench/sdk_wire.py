"""What one device write costs the phone: round trips, bytes on the wire, CPU.

A round trip is an HTTP request or a message the device sends on its WebSocket (a ``push``;
rarely a ``pong``): the device's push goes over its realtime socket when it has one.

The device (a :class:`~breakwater.client.Client` with the WebSocket transport) runs in this
process and the node in another, so ``time.process_time`` is the SDK's own work (the local
transaction, encoding, the sync round, the realtime echo) when the process runs nothing else:
``breakwater bench sdk`` runs it in a process of its own (:mod:`._sdk_device`). Every write
is followed by a pause long enough for everything it causes (the push, its acknowledgement,
the realtime echo and any pull) to happen, and the outbox must be empty after it: a settled
write, not a queued one.

Bytes are counted at the transport: HTTP request and response lines, headers and bodies as
HTTP/1.1 frames them; WebSocket bytes as read from and written to the socket (frame headers,
masks and compression included). The floor is the mutation's own encoded JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from breakwater.bench._node import BenchNode, free_port
from breakwater.client import Client
from breakwater.client.events import Event, MutationsAcknowledged
from breakwater.client.transports import WebSocketTransport
from breakwater.core import codec

DOC = {"title": "a todo item of ordinary size", "done": False, "tags": ["home", "errand"]}
SETTLE_SECONDS = 0.4
"""Pause after each write: loopback round trips take milliseconds, the pause is ample."""


@dataclass
class WireCount:
    """Traffic of one device, both directions."""

    requests: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0
    bytes_in: int = 0


def _header_bytes(headers: httpx.Headers) -> int:
    return sum(len(name) + len(value) + 4 for name, value in headers.raw) + 2


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's network transport, counting each exchange's bytes as HTTP/1.1 frames them."""

    def __init__(self, count: WireCount) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._count = count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        target = request.url.raw_path
        self._count.requests += 1
        self._count.bytes_out += len(request.method) + len(target) + 11  # " HTTP/1.1\r\n"
        self._count.bytes_out += _header_bytes(request.headers) + len(body)
        response = await self._inner.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
        self._count.bytes_in += 17 + _header_bytes(response.headers) + len(raw)  # status line
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=raw,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _counting_connection(count: WireCount) -> type[ClientConnection]:
    class CountingConnection(ClientConnection):
        """Counts the socket's bytes and the frames the protocol parsed or produced."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            protocol = self.protocol
            events, outgoing = protocol.events_received, protocol.data_to_send

            def received() -> list[Any]:
                frames = events()
                count.frames_in += len(frames)
                return frames

            def to_send() -> list[bytes]:
                chunks = outgoing()
                count.bytes_out += sum(len(c) for c in chunks)
                return chunks

            protocol.events_received = received  # type: ignore[method-assign]
            protocol.data_to_send = to_send  # type: ignore[method-assign]

        def data_received(self, data: bytes) -> None:
            count.bytes_in += len(data)
            super().data_received(data)

        async def send(self, message: Any, *, text: bool | None = None) -> None:
            count.frames_out += 1
            await super().send(message, text=text)

    return CountingConnection


@contextlib.contextmanager
def _counted_sockets(count: WireCount) -> Iterator[None]:
    saved = WebSocketTransport.connection_class
    WebSocketTransport.connection_class = _counting_connection(count)
    try:
        yield
    finally:
        WebSocketTransport.connection_class = saved


async def _settled(client: Client, pause: float) -> None:
    """Wait out the write's consequences (``pause`` s), then until the outbox is empty."""
    await asyncio.sleep(pause)
    empty = asyncio.Event()

    def check(_event: Event | None) -> None:
        if not client.status.pending:
            empty.set()

    remove = client.on(check)
    check(None)
    try:
        async with asyncio.timeout(30):
            await empty.wait()
    finally:
        remove()


async def device_writes(
    tmp: Path, writes: int, log_level: str, pause: float = SETTLE_SECONDS
) -> dict[str, float]:
    """``writes`` writes of one device, each settled before the next (``pause`` s, then an
    empty outbox); per-write averages."""
    count = WireCount()
    port = free_port()
    node = BenchNode(tmp / "node", port, log_level)
    try:
        await node.wait_ready()
        with _counted_sockets(count):
            async with Client(
                [f"http://127.0.0.1:{port}"],
                tmp / "device.db",
                transports=("websocket",),
                http_transport=CountingTransport(count),
            ) as client:
                todos = client.collection("todos")
                await todos.set("warm-up", DOC)  # connection, subscription, first pull
                async with asyncio.timeout(60):
                    await client.wait_synced()
                await _settled(client, pause)
                before = WireCount(**vars(count))
                pushed: list[int] = []

                def on_ack(event: Event) -> None:
                    if isinstance(event, MutationsAcknowledged):
                        pushed.extend(len(codec.dumps(e.to_wire())) for e in event.entries)

                client.on(on_ack)
                cpu_started = time.process_time()
                for i in range(writes):
                    await todos.set(f"t{i}", DOC)
                    await _settled(client, pause)
                cpu = time.process_time() - cpu_started
    finally:
        node.stop()
    wire = {k: (v - getattr(before, k)) / writes for k, v in vars(count).items()}
    mutation = sum(pushed) / len(pushed)
    return {
        **wire,
        "round_trips": wire["requests"] + wire["frames_out"],
        "bytes": wire["bytes_in"] + wire["bytes_out"],
        "mutation_bytes": mutation,
        "bytes_ratio_to_mutation": (wire["bytes_in"] + wire["bytes_out"]) / mutation,
        "cpu_ms": cpu * 1000 / writes,
    }
