"""Realtime frames through the chaos proxy's faults (the garbled frames of ``breakwater verify``).

Subscribers of every kind (permessage-deflate, uncompressed, and a raw socket that parses frames
itself) follow a node through a :class:`ChaosProxy` while a writer pushes and the proxy goes
through the faults of ``scenarios/partitions.yaml``. Every frame must be JSON, every change well
formed, and each subscriber must see the feed in order without a gap: a connection may be cut
(the subscriber resumes from its cursor), never handed a stream with a hole. A downstream
blackhole used to drop bytes and then deliver what followed, and permessage-deflate decompressed
the next frames against a window missing the dropped messages: the same well-framed garbage on
every compressed connection, and silently missing changes on the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from breakwater.chaos.faults import (
    Bandwidth,
    Blackhole,
    Fault,
    Partition,
    Slicer,
    SlowClose,
)
from breakwater.chaos.proxy import ChaosProxy
from tests.realtime.conftest import LiveNode

PARTITIONS_YAML_FAULTS: list[Fault] = [
    Partition(),
    Blackhole(direction="downstream"),
    Bandwidth(bytes_per_second=20_000),
    SlowClose(delay_ms=1500),
    Partition(direction="upstream"),
    Slicer(size_bytes=16, variation_bytes=8),
]
WRITES_BEFORE = 40
"""Writes before the first fault: enough history to fill a 4 KiB deflate window."""
WRITES_PER_FAULT = 15
TOTAL_WRITES = WRITES_BEFORE + WRITES_PER_FAULT * len(PARTITIONS_YAML_FAULTS)
CHANGE_KEYS = {
    "origin",
    "seq",
    "collection",
    "id",
    "op",
    "mutation_id",
    "hlc",
    "deleted",
    "version",
    "data",
}
PAD = "padding that deflate finds again in the window " * 2
DISCONNECTS = (ConnectionClosed, InvalidHandshake, OSError, asyncio.IncompleteReadError)


class RawWebSocket:
    """A WebSocket client written against RFC 6455 directly: no library between the bytes and
    the test (frames unmasked from the server, masked to it, no extension offered)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, address: str) -> RawWebSocket:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /v1/realtime HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101 "):
            writer.close()
            raise ConnectionError(f"upgrade refused: {head[:40]!r}")
        return cls(reader, writer)

    async def send(self, text: str) -> None:
        await self._send_frame(0x1, text.encode())

    async def recv(self) -> str:
        """The next text message (answering WebSocket pings on the way)."""
        while True:
            first, second = await self._reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self._reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self._reader.readexactly(8))
            assert not second & 0x80, "a server frame is never masked"
            payload = await self._reader.readexactly(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("closed by the node")
            if opcode == 0x9:
                await self._send_frame(0xA, payload)
                continue
            assert (opcode, first & 0xF0) == (0x1, 0x80), f"not a whole text frame: {first:#x}"
            return payload.decode()

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = bytes(random.getrandbits(8) for _ in range(4))
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        assert len(payload) < 126
        self._writer.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


@dataclass
class Follower:
    """One subscriber that follows the feed through the proxy, reconnecting from its cursor."""

    kind: str
    address: str
    seq: int = 0
    cursor: str = ""
    problems: list[str] = field(default_factory=list)
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(*DISCONNECTS):  # a cut is fine: resume from the cursor
                await self._follow()

    async def _follow(self) -> None:
        if self.kind == "raw":
            raw = await RawWebSocket.open(self.address)
            try:
                await self._read(raw.send, raw.recv)
            finally:
                raw.close()
            return
        compression = "deflate" if self.kind == "deflate" else None
        url = f"ws://{self.address}/v1/realtime"
        async with connect(url, compression=compression, open_timeout=10) as ws:

            async def recv() -> str:
                return str(await ws.recv())

            await self._read(ws.send, recv)

    async def _read(
        self, send: Callable[[str], Awaitable[None]], recv: Callable[[], Awaitable[str]]
    ) -> None:
        await send(json.dumps({"type": "subscribe", "cursor": self.cursor}))
        while True:
            raw = await recv()
            try:
                message = json.loads(raw)
            except ValueError:
                self.problems.append(f"{self.kind}: not JSON: {raw[:80]!r}")
                return  # reconnect from the last good cursor
            if message["type"] == "ping":
                await send('{"type":"pong"}')
            elif message["type"] == "changes":
                for change in message["changes"]:
                    self._check(change)
                self.cursor = message["cursor"]
                if self.seq == TOTAL_WRITES:
                    self.caught_up.set()

    def _check(self, change: dict[str, Any]) -> None:
        index = self.seq  # document d{i} is the (i + 1)th write
        expected = {"i": index, "pad": PAD}
        if set(change) - {"state"} != CHANGE_KEYS or change["seq"] != self.seq + 1:
            self.problems.append(f"{self.kind}: after seq {self.seq}: {change}")
        elif (change["id"], change["data"]) != (f"d{index}", expected):
            self.problems.append(f"{self.kind}: seq {change['seq']} is not d{index}: {change}")
        self.seq = max(self.seq, change["seq"])


async def test_every_frame_is_whole_through_the_faults_of_partitions_yaml(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """Compressed, uncompressed and raw subscribers see every change once, in order, intact."""
    live = await make_node(realtime_heartbeat=0.2, realtime_timeout=10.0)
    upstream = ("127.0.0.1", int(live.url.rsplit(":", 1)[1]))
    async with (
        ChaosProxy(upstream, rng=random.Random(11)) as proxy,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        kinds = ["deflate"] * 3 + ["plain"] * 2 + ["raw"]
        followers = [Follower(kind, proxy.address) for kind in kinds]
        tasks = [asyncio.create_task(follower.run()) for follower in followers]
        written = 0

        async def write(count: int) -> None:
            nonlocal written
            for _ in range(count):
                doc = {"i": written, "pad": PAD}
                response = await http.put(f"/v1/collections/notes/docs/d{written}", json=doc)
                assert response.status_code == 201, response.text
                written += 1

        try:
            await write(WRITES_BEFORE)
            for fault in PARTITIONS_YAML_FAULTS:
                proxy.set_fault(fault)
                await write(WRITES_PER_FAULT)
                if isinstance(fault, Blackhole):  # the fault must have swallowed live frames
                    await until(lambda: proxy.stats.dropped["downstream"] > 0)
                proxy.heal()
            async with asyncio.timeout(20):
                await asyncio.gather(*(follower.caught_up.wait() for follower in followers))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert [problem for follower in followers for problem in follower.problems] == []
    assert all(follower.seq == TOTAL_WRITES for follower in followers)
    assert proxy.stats.resets > 0  # the blackholed connections were cut, and resumed


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``condition()`` holds (a proxy counter: there is no event to await)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "the condition never held"
        await asyncio.sleep(0.01)
