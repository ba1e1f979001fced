"""The fan-out floor of ``breakwater bench realtime``: the same work as the node, nothing else.

``python -m breakwater.bench._fanout_floor`` serves the benchmark's writer and subscribers on one
loopback port with raw asyncio protocols: a ``PUT`` becomes a change at once (no store, no
validation, no auth, no durable commit), and a WebSocket subscriber is acknowledged at its first
message. Changes leave as the node's send passes would at best: each change is encoded once, in
the node's wire shape and about its size; a pass visits every subscriber in a fixed order and
writes each one message with everything it lacks (so changes that arrived during a pass are
merged into one message), framed once per distinct content and written with ``os.write``; a
subscriber whose socket still holds bytes waits for a later pass (one message in flight each).
Its latency is what any node could reach for this load on this machine, measured with the same
writer and subscriber process as the node; how far the node is above it is the node's own cost.
It prints its port on stdout once it listens and runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import sys
import time
from collections.abc import Callable

from breakwater.bench.descriptors import require_descriptors

SEND_CHUNK = 32
"""Subscribers visited between two yields to the event loop (as the node's sender)."""
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_ORIGIN = b"floor~0123456789ab"
"""A node's origin name has these 18 characters (``local~`` and 12 hex digits)."""
_CLOCK = b"floor-0abcde"


def text_frame(payload: bytes) -> bytes:
    """An unfragmented, unmasked WebSocket text frame (RFC 6455 5.2)."""
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", 0x81, length) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


_CHANGE = (
    b'{"origin":"%s","seq":%d,"collection":"%s","id":"%s","op":"set","mutation_id":"%032x",'
    b'"hlc":"%013d-%04d-%s","deleted":false,"version":"%020x","data":%s}'
)


def encode_change(seq: int, collection: bytes, doc_id: bytes, data: bytes) -> bytes:
    """One change in the node's wire shape (``server.wire.change_json``), ``data`` spliced in
    as received, its mutation id, clock and version as long as a node's."""
    wall_ms = int(time.time() * 1000)
    return _CHANGE % (
        _ORIGIN,
        seq,
        collection,
        doc_id,
        seq,
        wall_ms,
        seq % 10_000,
        _CLOCK,
        seq,
        data,
    )


def cursor(end: int) -> bytes:
    """A cursor at ``end`` in the node's form (``c1.`` and its vector in base64)."""
    vector = b'{"%s":%d}' % (_ORIGIN, end)
    return b"c1." + base64.urlsafe_b64encode(vector).rstrip(b"=")


def changes_message(changes: list[bytes], end: int) -> bytes:
    """A ``changes`` message carrying ``changes``, with a cursor at ``end``."""
    return (
        b'{"type":"changes","changes":['
        + b",".join(changes)
        + b'],"cursor":"%s","stable":{"%s":%d}}' % (cursor(end), _ORIGIN, end)
    )


class Subscriber:
    """Where a subscriber's frames go, how many changes it has been sent, and whether its
    socket still holds unsent bytes (``busy``: it is skipped, and what it lacks waits)."""

    __slots__ = ("busy", "sent", "write")

    def __init__(self, write: Callable[[bytes], None], sent: int) -> None:
        self.write = write
        self.sent = sent
        self.busy = False


class Fanout:
    """Every change published, in order, and the passes that hand them to the subscribers."""

    def __init__(self, chunk: int = SEND_CHUNK) -> None:
        self.changes: list[bytes] = []
        self.subscribers: list[Subscriber] = []
        self.chunk = chunk
        self.passes = 0
        self._published = asyncio.Event()

    def publish(self, change: bytes) -> None:
        """Add one encoded change; the sender takes it in its current or next pass."""
        self.changes.append(change)
        self._published.set()

    def subscribe(self, write: Callable[[bytes], None]) -> Subscriber:
        """A subscriber from the current position on (no replay)."""
        subscriber = Subscriber(write, len(self.changes))
        self.subscribers.append(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> None:
        """Stop sending to ``subscriber`` (its connection is gone)."""
        self.subscribers.remove(subscriber)

    def ready(self, subscriber: Subscriber) -> None:
        """``subscriber``'s socket has sent everything: it takes what it lacks in a pass."""
        subscriber.busy = False
        if subscriber.sent < len(self.changes):
            self._published.set()

    async def run(self) -> None:
        """Send passes for as long as changes come (until cancelled)."""
        while True:
            await self._published.wait()
            self._published.clear()
            await self.send_pass()

    async def send_pass(self) -> None:
        """Visit every subscriber once; each that is not busy gets one message with every
        change it lacks, and subscribers that lack the same changes share one frame.

        A busy subscriber (its last message not yet all in the kernel: the reader is slower)
        is left for a later pass, with one message for everything it lacks by then, as a node
        that keeps one message in flight per connection: buffering more would hold every
        change once per subscriber in memory, and at 10,000 subscribers push the kernel's TCP
        memory into pressure (stalls with retransmissions on loopback, measured)."""
        self.passes += 1
        frames: dict[int, bytes] = {}
        framed_to = -1
        for visited, subscriber in enumerate(list(self.subscribers), 1):
            end = len(self.changes)
            start = subscriber.sent
            if start < end and not subscriber.busy:
                if end != framed_to:
                    frames.clear()
                    framed_to = end
                frame = frames.get(start)
                if frame is None:
                    message = changes_message(self.changes[start:end], end)
                    frame = frames[start] = text_frame(message)
                subscriber.sent = end
                subscriber.write(frame)
            if visited % self.chunk == 0:
                await asyncio.sleep(0)  # writes come in here, and join this pass's later visits


class _Connection(asyncio.Protocol):
    """One connection: the writer's keep-alive HTTP, or a WebSocket subscriber."""

    def __init__(self, fanout: Fanout) -> None:
        self.fanout = fanout
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.websocket = False
        self.subscriber: Subscriber | None = None
        self.fd = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.fd = transport.get_extra_info("socket").fileno()
        # Paused as soon as a byte waits in the transport, resumed once all are sent.
        transport.set_write_buffer_limits(high=0)  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        if self.subscriber is not None:
            self.subscriber.busy = True

    def resume_writing(self) -> None:
        if self.subscriber is not None:
            self.fanout.ready(self.subscriber)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.subscriber is not None:
            self.fanout.remove(self.subscriber)
            self.subscriber = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.websocket:
            self._frames()
        else:
            self._requests()

    def _requests(self) -> None:
        """Answer each complete request: an upgrade, or a ``PUT`` whose body is published."""
        assert self.transport is not None
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(buffer) < end + 4 + length:
                return
            body = bytes(buffer[end + 4 : end + 4 + length])
            del buffer[: end + 4 + length]
            if headers.get("upgrade", "").lower() == "websocket":
                self._upgrade(headers["sec-websocket-key"])
                self._frames()
                return
            path = lines[0].split(" ", 2)[1].encode()
            _, _, collection, _, doc_id = path.strip(b"/").split(b"/", 4)
            fanout = self.fanout
            fanout.publish(encode_change(len(fanout.changes) + 1, collection, doc_id, body))
            self.transport.write(_OK)

    def _upgrade(self, key: str) -> None:
        assert self.transport is not None
        accept = base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.websocket = True

    def _frames(self) -> None:
        """Read the client's masked frames: the first text message subscribes; a close closes."""
        assert self.transport is not None
        buffer = self.buffer
        while len(buffer) >= 6:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            offset = 2
            if length == 126:
                length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < offset + 4 + length:
                return
            del buffer[: offset + 4 + length]  # the payload (a subscribe, a pong) is not needed
            if opcode == 0x8:
                self.transport.close()
                return
            if opcode == 0x1 and self.subscriber is None:
                self.transport.write(
                    text_frame(
                        b'{"type":"subscribed","collections":null,"cursor":"%s"}'
                        % cursor(len(self.fanout.changes))
                    )
                )
                self.subscriber = self.fanout.subscribe(self.write_now)

    def write_now(self, frame: bytes) -> None:
        """Write ``frame`` with one system call (which releases the GIL), through the
        transport's buffer only when earlier bytes wait there or the socket is full."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.write(frame)
            return
        try:
            written = os.write(self.fd, frame)
        except BlockingIOError:
            written = 0
        if written < len(frame):
            transport.write(frame[written:])


class FloorServer:
    """The floor on a loopback port, its sender running, as an ``async with`` block."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.fanout = Fanout()
        self._server: asyncio.Server | None = None
        self._sender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FloorServer:
        fanout = self.fanout
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(fanout), "127.0.0.1", self.port, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._sender = asyncio.create_task(fanout.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self._server is not None:
            self._server.close()


async def _main(connections: int) -> None:
    require_descriptors(connections, "the fan-out floor")
    async with FloorServer() as floor:
        print(floor.port, flush=True)
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        await reader.read()  # until the benchmark closes stdin


if __name__ == "__main__":
    import uvloop

    uvloop.run(_main(int(sys.argv[1])))
