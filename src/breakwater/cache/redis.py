"""The Redis cache (``redis://``): one cache shared by the nodes of a region.

Every call is one round trip (``MGET``, a pipeline of ``SET … PX`` or of ``SET … XX PX``,
``SET … NX PX``) bounded by a short socket timeout, without retries: a slow or absent Redis must
cost a read a fraction of a second at most before the server reads the store instead. Keys live
under ``<prefix>:``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from breakwater.cache import CacheUnavailable

TIMEOUT = 0.5
"""Seconds one call (connect included) may take."""


def fail_fast_client(url: str, timeout: float) -> aioredis.Redis:
    """A pool whose calls (connect included) give up after ``timeout`` seconds, unretried: the
    cache and the shared rate-limit buckets must never hold a request up for long."""
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


async def close_quietly(client: aioredis.Redis) -> None:
    """Close ``client``'s pool; a server already gone is no error."""
    with contextlib.suppress(RedisError, OSError):
        await client.aclose()


class RedisCache:
    """A :class:`~breakwater.cache.Cache` on a Redis server."""

    def __init__(self, url: str, prefix: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.prefix = f"{prefix}:"
        self.timeout = timeout
        self._client: aioredis.Redis | None = None

    async def open(self) -> None:
        """Create the connection pool (connections are made on first use)."""
        self._client = fail_fast_client(self.url, self.timeout)

    async def aclose(self) -> None:
        """Close the pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await close_quietly(client)

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise CacheUnavailable("the cache is not open")
        return self._client

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """``MGET`` of the keys."""
        if not keys:
            return []
        try:
            values = await self._redis().mget([self.prefix + key for key in keys])
        except (RedisError, OSError) as exc:
            raise CacheUnavailable("the Redis cache did not answer") from exc
        return [value.encode() if isinstance(value, str) else value for value in values]

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """``SET key value PX ttl`` for every item, in one pipeline."""
        await self._set_each(items, ttl, only_present=False)

    async def replace_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """``SET key value XX PX ttl`` for every item, in one pipeline."""
        await self._set_each(items, ttl, only_present=True)

    async def _set_each(
        self, items: Mapping[str, bytes], ttl: float, *, only_present: bool
    ) -> None:
        """One pipeline of ``SET … PX`` (with ``XX``: only where the key holds a value)."""
        if not items:
            return
        ms = max(1, int(ttl * 1000))
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(self.prefix + key, value, px=ms, xx=only_present)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise CacheUnavailable("the Redis cache did not answer") from exc

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """``SET key value NX PX ttl``."""
        try:
            done = await self._redis().set(
                self.prefix + key, value, px=max(1, int(ttl * 1000)), nx=True
            )
        except (RedisError, OSError) as exc:
            raise CacheUnavailable("the Redis cache did not answer") from exc
        return bool(done)
