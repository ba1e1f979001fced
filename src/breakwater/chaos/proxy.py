"""A fault-injecting TCP proxy: put it between clients and a node (or an engine) and break the link.

Every accepted connection opens its own connection to the upstream and copies bytes both ways
through two pipes (``upstream``: client to server; ``downstream``: server to client). Each pipe
is a reader that stamps chunks with their arrival time into a small bounded queue, and a writer
that applies the proxy's current faults to each chunk as it delivers it, so that latency delays
chunks without serialising reads, and switching a fault on or off acts on open connections at
once. Faults are described in :mod:`breakwater.chaos.faults`.

A reset (the ``reset_peer`` fault, or the upstream resetting) reaches the client as a real TCP
RST (``SO_LINGER`` 0); a clean close as a FIN. Everything runs on the caller's event loop.

A blackhole drops bytes, and TCP never delivers a stream with a hole in it: a connection that
lost bytes stays silent in that direction while the blackhole lasts and is reset when it lifts.
Delivering what follows the hole would hand the peer a stream no network produces (for a
WebSocket with permessage-deflate: frames decompressed against a window missing the dropped
messages, well-framed garbage).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from breakwater.chaos.faults import (
    Bandwidth,
    Blackhole,
    Fault,
    Latency,
    Loss,
    Partition,
    ResetPeer,
    Slicer,
    SlowClose,
    acts_on,
    fault_json,
)
from breakwater.resilience import TokenBucket

F = TypeVar("F", bound=Fault)
CHUNK_BYTES = 64 * 1024
QUEUE_CHUNKS = 16
"""Chunks in flight per pipe: bounds the proxy's memory and gives backpressure under latency."""
CONNECT_TIMEOUT_S = 10.0
_EOF = b""


def abort_with_reset(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class ProxyStats:
    """Counters since the proxy started."""

    connections: int = 0
    open: int = 0
    resets: int = 0
    bytes: dict[str, int] = field(default_factory=lambda: {"upstream": 0, "downstream": 0})
    dropped: dict[str, int] = field(default_factory=lambda: {"upstream": 0, "downstream": 0})


class ChaosProxy:
    """A TCP proxy from ``listen`` to ``upstream`` whose faults switch at runtime.

    Use ``async with ChaosProxy(...)`` or :meth:`start` / :meth:`aclose`. ``listen`` port 0 picks
    a free port (see :attr:`port`). ``rng`` makes jitter and slice sizes reproducible.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        listen: tuple[str, int] = ("127.0.0.1", 0),
        *,
        name: str = "proxy",
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.listen = listen
        self.stats = ProxyStats()
        self.rng = rng or random.Random()
        self._faults: dict[str, Fault] = {}
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    async def __aenter__(self) -> ChaosProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Listen; connections are served until :meth:`aclose`."""
        self._server = await asyncio.start_server(self._serve, *self.listen)

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        """``host:port`` clients connect to."""
        return f"{self.listen[0]}:{self.port}"

    async def aclose(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.task.cancel()
        for connection in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await connection.task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # Faults ------------------------------------------------------------------------------------

    @property
    def faults(self) -> dict[str, Fault]:
        """The faults in force, by kind."""
        return dict(self._faults)

    def set_fault(self, fault: Fault) -> None:
        """Switch ``fault`` on, replacing any fault of the same kind; acts on open connections."""
        self._faults[fault.kind] = fault
        if isinstance(fault, ResetPeer):
            for connection in self._connections:
                connection.schedule_reset(fault.after_ms)
        self._notify()

    def clear_fault(self, kind: str) -> bool:
        """Switch the fault ``kind`` off; whether it was on."""
        removed = self._faults.pop(kind, None) is not None
        if kind == "reset_peer":
            for connection in self._connections:
                connection.cancel_reset()
        self._notify()
        return removed

    def heal(self) -> None:
        """Switch every fault off."""
        for kind in list(self._faults):
            self.clear_fault(kind)

    def fault(self, kind: type[F], direction: str | None = None) -> F | None:
        """The fault of type ``kind`` in force (for ``direction``, if given), else ``None``."""
        fault = self._faults.get(kind.kind)
        if not isinstance(fault, kind) or (direction is not None and not acts_on(fault, direction)):
            return None
        return fault

    def describe(self) -> dict[str, Any]:
        """Name, addresses, faults and counters, as JSON."""
        return {
            "name": self.name,
            "listen": self.address if self._server else None,
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "faults": {kind: fault_json(fault) for kind, fault in self._faults.items()},
            "stats": {
                "connections": self.stats.connections,
                "open": self.stats.open,
                "resets": self.stats.resets,
                "bytes": dict(self.stats.bytes),
                "dropped": dict(self.stats.dropped),
            },
        }

    def _notify(self) -> None:
        self._reset_holed_connections()
        self._changed.set()
        self._changed = asyncio.Event()

    def _reset_holed_connections(self) -> None:
        """Reset every connection that lost bytes in a direction no blackhole covers any more."""
        for connection in list(self._connections):
            if any(
                pipe.holed and self.fault(Blackhole, pipe.direction) is None
                for pipe in connection.pipes
            ):
                connection.reset()

    async def wait_change(self) -> None:
        """Return at the next fault change."""
        await self._changed.wait()

    async def wait_link(self, direction: str) -> None:
        """Return once no partition cuts ``direction``."""
        while self.fault(Partition, direction) is not None:
            await self.wait_change()

    # Connections -------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # start_server runs each client in a task of its own
        connection = _Connection(self, reader, writer, task)
        self._connections.add(connection)
        self.stats.connections += 1
        self.stats.open += 1
        try:
            await connection.run()
        except asyncio.CancelledError:
            abort_with_reset(writer)
        finally:
            self.stats.open -= 1
            self._connections.discard(connection)


class _Connection:
    """One client connection and its upstream connection."""

    def __init__(
        self,
        proxy: ChaosProxy,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any],
    ) -> None:
        self.proxy = proxy
        self.client_reader = reader
        self.client_writer = writer
        self.task = task
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.pipes: list[_Pipe] = []
        self._reset_timer: asyncio.TimerHandle | None = None
        self._done = asyncio.Event()
        self._reset = False

    def schedule_reset(self, after_ms: float) -> None:
        self.cancel_reset()
        loop = asyncio.get_running_loop()
        self._reset_timer = loop.call_later(after_ms / 1000, self.reset)

    def cancel_reset(self) -> None:
        if self._reset_timer is not None:
            self._reset_timer.cancel()
            self._reset_timer = None

    def reset(self) -> None:
        """Reset both sides now."""
        if self._reset:
            return
        self._reset = True
        self.proxy.stats.resets += 1
        abort_with_reset(self.client_writer)
        if self.upstream_writer is not None:
            abort_with_reset(self.upstream_writer)
        self._done.set()

    async def run(self) -> None:
        proxy = self.proxy
        reset_fault = proxy.fault(ResetPeer)
        if reset_fault is not None:
            self.schedule_reset(reset_fault.after_ms)
        try:
            # A partition holds new connections too: the upstream never sees them until it heals.
            await self._until_done(proxy.wait_link("upstream"))
            await self._until_done(proxy.wait_link("downstream"))
            if self._reset:
                return
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(*proxy.upstream), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                self.reset()
                return
            self.upstream_writer = upstream_writer
            if self._reset:
                abort_with_reset(upstream_writer)
                return
            self.pipes = [
                _Pipe(self, "upstream", self.client_reader, upstream_writer),
                _Pipe(self, "downstream", upstream_reader, self.client_writer),
            ]
            tasks = [asyncio.ensure_future(task) for pipe in self.pipes for task in pipe.tasks()]
            try:
                await self._done.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self.cancel_reset()
            if not self._reset:
                self.client_writer.close()
                if self.upstream_writer is not None:
                    self.upstream_writer.close()

    async def _until_done(self, waiting: Any) -> None:
        wait_task = asyncio.ensure_future(waiting)
        done_task = asyncio.ensure_future(self._done.wait())
        await asyncio.wait([wait_task, done_task], return_when=asyncio.FIRST_COMPLETED)
        for task in (wait_task, done_task):
            task.cancel()

    def finish(self, *, broken: bool) -> None:
        """End the connection: with a reset both ways if one side broke, else with FINs."""
        if broken:
            self.reset()
        else:
            self._done.set()


class _Pipe:
    """Bytes one way: a reader stamping chunks and a writer delivering them through the faults."""

    def __init__(
        self,
        connection: _Connection,
        direction: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.connection = connection
        self.proxy = connection.proxy
        self.direction = direction
        self.reader = reader
        self.writer = writer
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        self._last_due = 0.0
        self._bucket: tuple[Bandwidth, TokenBucket] | None = None
        self.holed = False
        """Whether a blackhole dropped bytes of this stream: nothing after them may pass."""

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        return [self._read(), self._write()]

    async def _read(self) -> None:
        try:
            while True:
                await self.proxy.wait_link(self.direction)
                data = await self.reader.read(CHUNK_BYTES)
                await self.queue.put((time.monotonic(), data))
                if not data:
                    return
        except OSError:
            self.connection.finish(broken=True)

    async def _write(self) -> None:
        try:
            while True:
                arrived, data = await self.queue.get()
                await self._delay(arrived)
                await self.proxy.wait_link(self.direction)
                if self.proxy.fault(Blackhole, self.direction) is not None:
                    self.proxy.stats.dropped[self.direction] += len(data)
                    self.holed = True
                    continue  # a blackhole swallows the close too: the peer waits until it lifts
                if self.holed:  # the proxy resets the connection as the blackhole lifts
                    self.connection.finish(broken=True)
                    return
                if not data:
                    slow = self.proxy.fault(SlowClose)
                    if slow is not None:
                        await asyncio.sleep(slow.delay_ms / 1000)
                    self.connection.finish(broken=False)
                    return
                await self._deliver(data)
        except OSError:
            self.connection.finish(broken=True)

    async def _delay(self, arrived: float) -> None:
        delay_ms = 0.0
        latency = self.proxy.fault(Latency, self.direction)
        if latency is not None:
            jitter = self.proxy.rng.uniform(-latency.jitter_ms, latency.jitter_ms)
            delay_ms += max(0.0, latency.ms + jitter)
        loss = self.proxy.fault(Loss, self.direction)
        if loss is not None and self.proxy.rng.random() * 100 < loss.percent:
            delay_ms += loss.retransmit_ms
        if not delay_ms:
            return
        due = max(arrived + delay_ms / 1000, self._last_due)
        self._last_due = due
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _deliver(self, data: bytes) -> None:
        for piece, pause in self._pieces(data):
            await self._throttle(len(piece))
            self.writer.write(piece)
            await self.writer.drain()
            self.proxy.stats.bytes[self.direction] += len(piece)
            if pause > 0:
                await asyncio.sleep(pause)

    def _pieces(self, data: bytes) -> list[tuple[bytes, float]]:
        slicer = self.proxy.fault(Slicer, self.direction)
        bandwidth = self.proxy.fault(Bandwidth, self.direction)
        limit = _burst(bandwidth) if bandwidth is not None else len(data)
        pieces: list[tuple[bytes, float]] = []
        offset = 0
        while offset < len(data):
            size = limit
            pause = 0.0
            if slicer is not None:
                size = slicer.size_bytes + self.proxy.rng.randint(
                    -slicer.variation_bytes, slicer.variation_bytes
                )
                size = min(max(1, size), limit)
                pause = slicer.delay_ms / 1000
            pieces.append((data[offset : offset + size], pause))
            offset += size
        return pieces

    async def _throttle(self, size: int) -> None:
        bandwidth = self.proxy.fault(Bandwidth, self.direction)
        if bandwidth is None:
            self._bucket = None
            return
        if self._bucket is None or self._bucket[0] != bandwidth:
            rate = bandwidth.bytes_per_second
            self._bucket = (bandwidth, TokenBucket(rate, _burst(bandwidth)))
            self._bucket[1].reserve(_burst(bandwidth))  # start empty: no free first burst
        wait = self._bucket[1].reserve(min(size, _burst(bandwidth)))
        if wait:
            await asyncio.sleep(wait)


def _burst(bandwidth: Bandwidth) -> int:
    """Bytes written at once under a bandwidth cap: 20 ms worth, at least one byte."""
    return max(1, bandwidth.bytes_per_second // 50)
