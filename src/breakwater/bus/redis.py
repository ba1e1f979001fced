"""The Redis bus (``redis://``): commit notices over Redis pub/sub.

Pub/sub rather than streams: a notice is worth something only to the nodes listening right now
(a node that starts reads the store's head, and one that missed notices meets the changes
through its fallback poll), and the newest notice supersedes the older ones. Streams would add
storage, trimming and per-node read positions for delivery guarantees the feed already gives.

URL: ``redis://[:password@]host:port/db?prefix=NAME``; notices travel on the channel
``NAME.commits`` (``prefix`` defaults to ``breakwater.<region>``). Every other query parameter
is redis-py's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from breakwater.bus._remote import CONNECT_TIMEOUT, SEND_TIMEOUT, RemoteBus

POLL_SECONDS = 1.0


class RedisLink:
    """A Redis client (for publishing and pings) and a pub/sub connection on one channel."""

    def __init__(self, client: aioredis.Redis, pubsub: PubSub, channel: str) -> None:
        self.client = client
        self.pubsub = pubsub
        self.channel = channel

    async def send(self, payload: bytes) -> None:
        """PUBLISH the payload."""
        await self.client.publish(self.channel, payload)

    async def receive(self) -> AsyncIterator[bytes]:
        """The channel's messages; a lost connection raises redis' ConnectionError."""
        while True:
            message = await self.pubsub.get_message(
                ignore_subscribe_messages=True, timeout=POLL_SECONDS
            )
            if message is not None and message.get("type") == "message":
                data = message["data"]
                yield data if isinstance(data, bytes) else str(data).encode()

    async def ping(self) -> None:
        """PING over the publishing connection."""
        await self.client.ping()

    async def close(self) -> None:
        """Close both connections."""
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        with contextlib.suppress(Exception):
            await self.client.aclose()


class RedisConnector:
    """Connects to the Redis server of ``url`` and subscribes to ``channel``."""

    name = "redis"

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel

    async def connect(self) -> RedisLink:
        """A subscribed link; raises when Redis cannot be reached."""
        client = aioredis.Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=SEND_TIMEOUT,
            # Reconnecting is the bus's job (with jittered backoff); redis-py must not retry.
            retry=Retry(NoBackoff(), 0),
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        link = RedisLink(client, pubsub, self.channel)
        try:
            await client.ping()
            await pubsub.subscribe(self.channel)
        except BaseException:
            await link.close()
            raise
        return link


def redis_bus(url: str, channel: str) -> RemoteBus:
    """A bus over the Redis server of ``url`` (a URL without breakwater's own parameters)."""
    return RemoteBus(RedisConnector(url, channel))
