"""The NATS JetStream bus (``nats+jetstream://``): commit notices through a JetStream stream.

The same notices as the core NATS bus (:mod:`breakwater.bus.nats`), with the broker keeping the
last few of them: each region's subject is captured by a memory-storage stream holding at most
``PER_SUBJECT`` notices for ``MAX_AGE`` seconds (a notice is superseded by the next one, so
nothing older is worth keeping), and every node reads it through an *ordered ephemeral consumer*
that delivers only notices published after it was created. Publishing waits for the stream's
acknowledgement, so a sender learns of a missing stream or a broker that lost JetStream and
reconnects (which declares the stream again). Reconnects, backoff and degraded operation are
the shared ones of :mod:`breakwater.bus._remote`.

ADR 0010 compares its cross-node latency with core NATS and says which is the default.

URL: ``nats+jetstream://[user:password@]host:port?prefix=NAME``; notices travel on
``NAME.commits`` and the stream is named after the prefix (``.`` and other characters a stream
name cannot hold become ``_``). A stream of that name that already exists is used as it is
(an operator may have created it with other limits); one that captures other subjects makes
the connection fail, which the bus reports as unhealthy and retries.
"""

from __future__ import annotations

import re

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from breakwater.bus._remote import SEND_TIMEOUT, RemoteBus
from breakwater.bus.nats import NatsConnector, NatsLink

PER_SUBJECT = 16
"""Notices the stream keeps per subject (the newest supersedes the rest)."""
MAX_AGE = 600.0
"""Seconds a kept notice lives at most."""


def stream_name(subject: str) -> str:
    """The stream that captures ``subject``: its prefix, with what a name cannot hold as ``_``."""
    return "breakwater_" + re.sub(r"[^A-Za-z0-9_-]", "_", subject.removesuffix(".commits"))


class JetStreamLink(NatsLink):
    """One NATS connection reading ``subject`` through an ordered consumer of its stream."""

    def __init__(self, subject: str) -> None:
        super().__init__(subject)
        self.stream = stream_name(subject)
        self.js: JetStreamContext | None = None

    async def start(self, url: str) -> None:
        """Connect, declare the stream if it is missing, and consume new notices only."""
        client: Client = await self.connect(url)
        js = client.jetstream(timeout=SEND_TIMEOUT)
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            # Nodes that start together may both get here; adding the same config is idempotent.
            await js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[self.subject],
                    storage=StorageType.MEMORY,
                    max_msgs_per_subject=PER_SUBJECT,
                    max_age=MAX_AGE,
                    discard=DiscardPolicy.OLD,
                    num_replicas=1,
                )
            )
        await js.subscribe(
            self.subject,
            stream=self.stream,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        await client.flush(timeout=int(SEND_TIMEOUT))
        self.js = js

    async def send(self, payload: bytes) -> None:
        """Publish and wait for the stream's acknowledgement."""
        if self.js is None or self.client is None or not self.client.is_connected:
            raise ConnectionError("the NATS connection is closed")
        await self.js.publish(self.subject, payload, stream=self.stream)


class JetStreamConnector(NatsConnector):
    """Connects to the NATS server of ``url`` and consumes ``subject``'s stream."""

    name = "nats+jetstream"

    def new_link(self) -> JetStreamLink:
        """An unconnected JetStream link."""
        return JetStreamLink(self.subject)


def jetstream_bus(url: str, subject: str) -> RemoteBus:
    """A bus over the JetStream of the NATS server of ``url`` (a ``nats://`` URL)."""
    return RemoteBus(JetStreamConnector(url, subject))
