"""Rate-limit buckets in Redis (``redis://``): one set of buckets for all nodes of a region.

Each call is one Lua script (sent once, then run by ``EVALSHA``), so a request's buckets are
checked and taken atomically however many nodes take from them at once. The scripts read the
time from Redis (``TIME``), so the nodes' clocks do not matter. A bucket's key expires when it
would be full again. Every call is bounded by a short socket timeout, without retries: a slow
or absent Redis costs a request a fraction of a second at most before the node limits with its
own buckets (see server/rate_limit.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from breakwater.cache.buckets import BucketsUnavailable, Limit, Wait
from breakwater.cache.redis import TIMEOUT, close_quietly, fail_fast_client

# KEYS: the buckets; ARGV: interval and burst (microseconds, tokens) of each.
# Returns {0, 0} when every bucket let the request in, else {i, wait_us} for the bucket i
# (1-based) with the longest wait, having changed nothing.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local worst, longest, tats = 0, 0, {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local start = math.max(tonumber(redis.call('GET', key) or now), now)
  local wait = (start - now) - (burst - 1) * interval
  if wait > longest then worst, longest = i, wait end
  tats[i] = start + interval
end
if worst > 0 then return {worst, math.ceil(longest)} end
for i, key in ipairs(KEYS) do
  local ttl_ms = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', ttl_ms)
end
return {0, 0}
"""

# KEYS: the buckets; ARGV: the interval of each (microseconds). Moves each TAT back by one.
REFUND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    tat = tat - tonumber(ARGV[i])
    if tat <= now then
      redis.call('DEL', key)
    else
      redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
    end
  end
end
return 0
"""


def _micros(seconds: float) -> str:
    return repr(seconds * 1_000_000)


class RedisBuckets:
    """:class:`~breakwater.cache.buckets.Buckets` on a Redis server, keys under ``<prefix>:``."""

    def __init__(self, url: str, prefix: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.prefix = f"{prefix}:"
        self.timeout = timeout
        self._client: aioredis.Redis | None = None
        self._take: AsyncScript | None = None
        self._refund: AsyncScript | None = None

    async def open(self) -> None:
        """Create the connection pool (connections are made on first use)."""
        client = fail_fast_client(self.url, self.timeout)
        self._client = client
        self._take = client.register_script(TAKE)
        self._refund = client.register_script(REFUND)

    async def aclose(self) -> None:
        """Close the pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await close_quietly(client)

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise BucketsUnavailable("the rate-limit buckets are not open")
        return self._client

    def _script(self, script: AsyncScript | None) -> AsyncScript:
        if self._client is None or script is None:
            raise BucketsUnavailable("the rate-limit buckets are not open")
        return script

    async def take(self, limits: Sequence[Limit]) -> Wait | None:
        """The ``TAKE`` script over every bucket."""
        if not limits:
            return None
        script = self._script(self._take)
        args = [part for limit in limits for part in (_micros(limit.interval), limit.burst)]
        try:
            index, wait_us = await script(
                keys=[self.prefix + limit.key for limit in limits], args=args
            )
        except (RedisError, OSError) as exc:
            raise BucketsUnavailable("the Redis rate-limit buckets did not answer") from exc
        if not index:
            return None
        return Wait(limits[int(index) - 1], int(wait_us) / 1_000_000)

    async def refund(self, limits: Sequence[Limit]) -> None:
        """The ``REFUND`` script over every bucket."""
        if not limits:
            return
        script = self._script(self._refund)
        try:
            await script(
                keys=[self.prefix + limit.key for limit in limits],
                args=[_micros(limit.interval) for limit in limits],
            )
        except (RedisError, OSError) as exc:
            raise BucketsUnavailable("the Redis rate-limit buckets did not answer") from exc

    async def mark(self, key: str, ttl: float) -> None:
        """``SET key 1 PX ttl``."""
        try:
            await self._redis().set(self.prefix + key, b"1", px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise BucketsUnavailable("the Redis rate-limit buckets did not answer") from exc

    async def marked(self, key: str) -> bool:
        """``EXISTS key``."""
        try:
            return bool(await self._redis().exists(self.prefix + key))
        except (RedisError, OSError) as exc:
            raise BucketsUnavailable("the Redis rate-limit buckets did not answer") from exc
