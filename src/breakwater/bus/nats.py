"""The NATS bus (``nats://``): commit notices over core NATS subjects.

Core NATS by default: a notice matters only to the nodes listening now, and the newest one
supersedes the older ones (see :mod:`breakwater.bus`). JetStream's persistence and acks add a
round trip and a stream to manage for guarantees the store's feed already gives; a node that
misses notices meets the changes through its fallback poll. Where JetStream is wanted anyway,
``nats+jetstream://`` (:mod:`breakwater.bus.jetstream`) reuses this connection code. ``no_echo``
keeps the server from sending a node its own notices.

nats-py's own reconnect (fixed waits, give up after 60 tries) is off: the bus reconnects forever,
with exponential backoff and full jitter, like every backend.

URL: ``nats://[user:password@]host:port?prefix=NAME``; notices travel on the subject
``NAME.commits`` (``prefix`` defaults to ``breakwater.<region>``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from breakwater.bus._remote import CONNECT_TIMEOUT, KEEPALIVE, SEND_TIMEOUT, RemoteBus

INBOX = 1024
"""Received notices waiting for the receiver (the oldest is dropped past this)."""
LOST = b""
"""Marks the end of the connection in the inbox (no real notice is empty)."""


class NatsLink:
    """One NATS connection subscribed to ``subject``."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.client: Client | None = None
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=INBOX)

    def _put(self, payload: bytes) -> None:
        if self.inbox.full():
            self.inbox.get_nowait()
        self.inbox.put_nowait(payload)

    async def _on_message(self, message: Msg) -> None:
        self._put(message.data)

    async def _on_lost(self) -> None:
        self._put(LOST)

    async def _on_error(self, error: Exception) -> None:
        """nats-py reports errors here too; the connection's loss is what matters."""

    async def start(self, url: str) -> None:
        """Connect and subscribe; raises when NATS cannot be reached."""
        client = await self.connect(url)
        await client.subscribe(self.subject, cb=self._on_message)
        await client.flush(timeout=int(SEND_TIMEOUT))

    async def connect(self, url: str) -> Client:
        """The connection, without nats-py's own reconnects (the bus reconnects itself)."""
        self.client = await nats.connect(
            url,
            allow_reconnect=False,
            connect_timeout=int(CONNECT_TIMEOUT),
            ping_interval=int(KEEPALIVE),
            max_outstanding_pings=2,
            no_echo=True,
            disconnected_cb=self._on_lost,
            closed_cb=self._on_lost,
            error_cb=self._on_error,
        )
        return self.client

    async def send(self, payload: bytes) -> None:
        """Publish the payload (buffered by nats-py, flushed by its flusher task)."""
        if self.client is None or self.client.is_closed or not self.client.is_connected:
            raise ConnectionError("the NATS connection is closed")
        await self.client.publish(self.subject, payload)

    async def receive(self) -> AsyncIterator[bytes]:
        """The subject's messages until the connection is lost."""
        while True:
            payload = await self.inbox.get()
            if payload == LOST:
                raise ConnectionError("the NATS connection was lost")
            yield payload

    async def ping(self) -> None:
        """A round trip (PING/PONG) to the server."""
        if self.client is None:
            raise ConnectionError("the NATS connection is not open")
        await self.client.flush(timeout=int(SEND_TIMEOUT))

    async def close(self) -> None:
        """Close the connection."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()


class NatsConnector:
    """Connects to the NATS server of ``url`` and subscribes to ``subject``."""

    name = "nats"

    def __init__(self, url: str, subject: str) -> None:
        self.url = url
        self.subject = subject

    def new_link(self) -> NatsLink:
        """An unconnected link of this backend."""
        return NatsLink(self.subject)

    async def connect(self) -> NatsLink:
        """A subscribed link."""
        link = self.new_link()
        try:
            await link.start(self.url)
        except BaseException:
            await link.close()
            raise
        return link


def nats_bus(url: str, subject: str) -> RemoteBus:
    """A bus over the NATS server of ``url`` (a URL without breakwater's own parameters)."""
    return RemoteBus(NatsConnector(url, subject))
