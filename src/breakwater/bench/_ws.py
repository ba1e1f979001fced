"""A minimal WebSocket client for load generation (RFC 6455, text frames, optional deflate).

A general-purpose client spends more CPU per message than the node spends sending it; with
thousands of subscribers on a 2-core machine that would measure the client. This one parses
frames straight from the socket buffer in ``data_received`` and hands each text message to a
callback as bytes. No fragmentation, no extensions but permessage-deflate, no TLS.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import zlib
from collections.abc import Callable

_OP_TEXT = 0x1
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA
_INFLATE_TAIL = b"\x00\x00\xff\xff"


class HandshakeRefused(Exception):
    """The server answered the upgrade with ``status`` (and a ``Retry-After`` of ``retry``)."""

    def __init__(self, status: int, retry: float) -> None:
        super().__init__(f"upgrade refused with {status}")
        self.status = status
        self.retry = retry


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    length = len(payload)
    repeated = (key * (length // 4 + 1))[:length]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return key + masked.to_bytes(length, "big")


def _frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + (_mask(payload) if payload else os.urandom(4))


class WsClient(asyncio.Protocol):
    """One connection; ``on_message`` gets every text message's payload."""

    def __init__(self, on_message: Callable[[WsClient, bytes], None], deflate: bool) -> None:
        self.on_message = on_message
        self.deflate = deflate
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._open = False
        self._inflate: zlib._Decompress | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str,
        on_message: Callable[[WsClient, bytes], None],
        deflate: bool = False,
    ) -> WsClient:
        """Open a connection and complete the upgrade (``HandshakeRefused`` on a non-101)."""
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: cls(on_message, deflate), host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
        assert client.transport is not None
        client.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extension}\r\n"
            ).encode()
        )
        await client.handshake
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, text: bytes) -> None:
        """Send one text message (uncompressed)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(_OP_TEXT, text))

    def close(self) -> None:
        """Drop the connection."""
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[: end + 4]
            status = int(head.split(" ", 2)[1])
            if status != 101:
                retry = 1.0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "retry-after":
                        retry = float(value.strip())
                self.handshake.set_exception(HandshakeRefused(status, retry))
                self.close()
                return
            if self.deflate and "permessage-deflate" in head.lower():
                self._inflate = zlib.decompressobj(wbits=-15)
            self._open = True
            self.handshake.set_result(None)
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = struct.unpack_from("!H", buffer, 2)[0]
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = struct.unpack_from("!Q", buffer, 2)[0]
                offset = 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            opcode = first & 0x0F
            if opcode == _OP_TEXT:
                if first & 0x40 and self._inflate is not None:
                    payload = self._inflate.decompress(payload + _INFLATE_TAIL)
                self.on_message(self, payload)
            elif opcode == _OP_PING and self.transport is not None:
                self.transport.write(_frame(_OP_PONG, payload))
            elif opcode == _OP_CLOSE:
                self.close()
                return
