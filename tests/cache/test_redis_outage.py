"""A Redis cache that cannot reach Redis fails promptly with CacheUnavailable, and recovers."""

from __future__ import annotations

import asyncio

import pytest

from breakwater.cache import CacheUnavailable, open_cache
from tests.forwarder import Forwarder
from tests.services import REDIS_URL, require_service


async def test_an_unreachable_redis_is_a_prompt_cache_unavailable() -> None:
    """Cut: every call raises CacheUnavailable within a second; restored: calls work again."""
    forwarder = Forwarder(require_service(REDIS_URL))
    await forwarder.start()
    cache = open_cache(f"{forwarder.url}?prefix=test-outage-{id(forwarder)}")
    await cache.open()
    try:
        await cache.set_many({"k": b"v"}, ttl=30)
        await forwarder.cut()
        loop = asyncio.get_running_loop()
        for call in (
            cache.get_many(["k"]),
            cache.set_many({"k": b"w"}, ttl=30),
            cache.add("n", b"1", ttl=30),
        ):
            started = loop.time()
            with pytest.raises(CacheUnavailable):
                await call
            assert loop.time() - started < 1.0
        await forwarder.restore()
        assert await cache.get_many(["k"]) == [b"v"]
    finally:
        await cache.aclose()
        await forwarder.aclose()
