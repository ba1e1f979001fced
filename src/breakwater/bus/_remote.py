"""What the broker backends (Redis, NATS) share: local fan-out, a background sender, reconnects.

A :class:`RemoteBus` keeps the contract of :mod:`breakwater.bus` whatever the broker does:

- Subscribers of this process are served by an in-process :class:`MemoryBus`. A notice published
  here reaches them at once, broker or not; a notice received from the broker is handed to them
  when it comes from *another* bus (every payload names its sender, so our own echo is dropped
  and nothing is delivered twice).
- ``publish`` only folds the notice into one *pending* notice (heads merged per origin, earliest
  ``at`` kept) and wakes the sender task. The pending notice covers everything not yet sent, so
  the sender's backlog is bounded by the number of origins, never by the publish rate, and a
  sender that falls behind sends one notice for many commits: readers pull from the store, so
  the newest head is all they need.
- A supervisor task connects, runs a sender and a receiver over the connection, and when either
  fails marks the bus unhealthy and reconnects after an exponential backoff with full jitter.
  While unhealthy the pending notice waits (it is still one notice); readers on other nodes meet
  the change through their fallback poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Protocol

import structlog

from breakwater.bus import BusStats, CommitNotice
from breakwater.bus.memory import MemoryBus, MemorySubscription
from breakwater.core import codec
from breakwater.core.cursor import VersionVector
from breakwater.resilience import Backoff

SEND_TIMEOUT = 2.0
"""How long one send may take before the connection is treated as lost."""
CONNECT_TIMEOUT = 2.0
"""How long one connection attempt may take."""
KEEPALIVE = 5.0
"""An idle connection is pinged this often, so a silent broker is noticed (and reported)."""
OPEN_WAIT = CONNECT_TIMEOUT + 0.5
"""How long ``open`` waits for the first attempt's outcome before returning anyway (I8)."""


class Link(Protocol):
    """One live connection to a broker, subscribed to the bus's channel."""

    async def send(self, payload: bytes) -> None:
        """Publish ``payload`` on the channel; raises on a broken connection."""

    def receive(self) -> AsyncIterator[bytes]:
        """The payloads on the channel (ours may be among them); ends or raises when lost."""

    async def ping(self) -> None:
        """One round trip to the broker; raises on a broken connection."""

    async def close(self) -> None:
        """Release the connection; never raises."""


class Connector(Protocol):
    """Opens :class:`Link` objects to one broker and channel."""

    name: str
    """The backend's name for logs and metrics (``redis``, ``nats``)."""

    async def connect(self) -> Link:
        """A new subscribed link; raises when the broker cannot be reached."""


def encode(sender: str, notice: CommitNotice) -> bytes:
    """The wire form of a notice: ``{"s": sender, "h": head, "at": time}``."""
    return codec.dumps({"s": sender, "h": notice.head, "at": notice.at})


def decode(payload: bytes) -> tuple[str, CommitNotice] | None:
    """``(sender, notice)``, or None for a payload that is not a notice (it is ignored)."""
    try:
        raw = codec.loads(payload)
        sender, head, at = raw["s"], raw["h"], raw["at"]
    except (codec.JSONDecodeError, TypeError, KeyError):
        return None
    if not (isinstance(sender, str) and isinstance(head, dict) and isinstance(at, int | float)):
        return None
    if not all(isinstance(k, str) and type(v) is int for k, v in head.items()):
        return None
    return sender, CommitNotice(head, float(at))


def fold(pending: CommitNotice | None, notice: CommitNotice) -> CommitNotice:
    """One notice covering both: the per-origin maximum of the heads, the earlier time."""
    if pending is None:
        return notice
    head: VersionVector = dict(pending.head)
    for origin, seq in notice.head.items():
        if seq > head.get(origin, 0):
            head[origin] = seq
    return CommitNotice(head, min(pending.at, notice.at))


class RemoteBus:
    """A :class:`~breakwater.bus.Bus` over a broker reached through ``connector``."""

    def __init__(self, connector: Connector, backoff: Backoff | None = None) -> None:
        self.connector = connector
        self.backoff = backoff or Backoff(base=0.1, cap=5.0)
        self.sender_id = secrets.token_hex(8)
        self.local = MemoryBus()
        self.stats = BusStats()
        self._pending: CommitNotice | None = None
        self._wakeup = asyncio.Event()
        self._connected = asyncio.Event()
        self._first_attempt = asyncio.Event()
        """Set once the first connection attempt succeeded or failed."""
        self._healthy = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._log = structlog.get_logger("breakwater.bus")

    # Bus ----------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Start connecting; wait for the first attempt's outcome, never fail (I8).

        A broker that refuses (nothing listens) answers at once, so the node starts degraded at
        once; only an attempt that hangs holds the start, for :data:`OPEN_WAIT` at most.
        """
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._supervise(), name=f"bw-bus-{self.connector.name}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), OPEN_WAIT)

    async def aclose(self) -> None:
        """End every subscription and the connection."""
        self._closed = True
        self._wakeup.set()
        await self.local.aclose()
        if self._task is not None:
            self._task.cancel()
            await _settle([self._task])
            self._task = None
        self._healthy = False

    def publish(self, notice: CommitNotice) -> None:
        """Deliver to this process's subscribers now; hand to the sender for other nodes."""
        if self._closed:
            return
        self.local.publish(notice)
        self._pending = fold(self._pending, notice)
        self._wakeup.set()

    def subscribe(self, buffer: int = 64) -> MemorySubscription:
        """A subscription to this node's notices and every other node's."""
        return self.local.subscribe(buffer)

    @property
    def healthy(self) -> bool:
        """True while connected to the broker."""
        return self._healthy

    # the connection -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        lost = False
        while not self._closed:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    link = await self.connector.connect()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._log.warning("bus_connect_failed", bus=self.connector.name, error=repr(error))
                self._first_attempt.set()
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self._first_attempt.set()
            self.backoff.reset()
            if lost:
                self.stats.reconnects += 1
            self._healthy = True
            self._connected.set()
            self._log.info("bus_connected", bus=self.connector.name)
            try:
                await self._serve(link)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._log.warning("bus_connection_lost", bus=self.connector.name, error=repr(error))
            finally:
                self._healthy = False
                self._connected.clear()
                await link.close()
            lost = True
            await asyncio.sleep(self.backoff.next_delay())

    async def _serve(self, link: Link) -> None:
        """Run sender and receiver until either stops; re-raise what stopped it."""
        tasks = [
            asyncio.create_task(self._send_forever(link)),
            asyncio.create_task(self._receive_forever(link)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await _settle(tasks)
        for task in done:
            task.result()
        if not self._closed:
            raise ConnectionError("the broker closed the subscription")

    async def _send_forever(self, link: Link) -> None:
        while not self._closed:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    await self._wakeup.wait()
            except TimeoutError:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await link.ping()
                continue
            self._wakeup.clear()
            notice, self._pending = self._pending, None
            if notice is None:
                continue
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await link.send(encode(self.sender_id, notice))
            except BaseException:
                # Unsent: fold it back so the next connection announces it (harmless if late).
                self._pending = fold(notice, self._pending) if self._pending else notice
                self._wakeup.set()
                raise
            self.stats.sent += 1

    async def _receive_forever(self, link: Link) -> None:
        async for payload in link.receive():
            if self._closed:
                return
            decoded = decode(payload)
            if decoded is None:
                continue
            sender, notice = decoded
            if sender != self.sender_id:
                self.stats.received += 1
                self.local.publish(notice)


async def _settle(tasks: list[asyncio.Task[None]]) -> None:
    """Wait briefly for cancelled tasks to end.

    A client library may swallow a cancellation in the middle of a network call; the loops
    also stop on ``_closed``, and a task still running after the bound is left to finish alone
    rather than hang the node's shutdown.
    """
    await asyncio.wait(tasks, timeout=CONNECT_TIMEOUT)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure here was already logged or is moot
