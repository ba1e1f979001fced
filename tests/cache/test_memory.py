"""The in-process LRU: bounded by entries and bytes, least recently used evicted first."""

from __future__ import annotations

from breakwater.cache.memory import MemoryCache
from breakwater.cache.none import NoCache


async def test_the_least_recently_used_entry_is_evicted_first() -> None:
    """Past ``max_entries`` the entry read or written longest ago goes."""
    cache = MemoryCache(max_entries=2)
    await cache.set_many({"a": b"1", "b": b"2"}, ttl=30)
    await cache.get_many(["a"])
    await cache.set_many({"c": b"3"}, ttl=30)
    assert await cache.get_many(["a", "b", "c"]) == [b"1", None, b"3"]
    assert len(cache) == 2


async def test_bytes_are_bounded_too() -> None:
    """Keys and values together stay under ``max_bytes``; an oversized value is not kept."""
    cache = MemoryCache(max_entries=100, max_bytes=30)
    await cache.set_many({"a": b"x" * 10, "b": b"y" * 10}, ttl=30)
    await cache.set_many({"c": b"z" * 10}, ttl=30)
    assert cache.bytes <= 30
    assert await cache.get_many(["a", "c"]) == [None, b"z" * 10]
    await cache.set_many({"huge": b"h" * 100}, ttl=30)
    assert await cache.get_many(["huge"]) == [None]
    assert cache.bytes <= 30


async def test_expiry_follows_the_injected_clock() -> None:
    """An entry is gone once the clock passes its deadline, and its bytes are released."""
    now = [100.0]
    cache = MemoryCache(clock=lambda: now[0])
    await cache.set_many({"k": b"v"}, ttl=5)
    now[0] = 104.9
    assert await cache.get_many(["k"]) == [b"v"]
    now[0] = 105.0
    assert await cache.get_many(["k"]) == [None]
    assert cache.bytes == 0
    assert await cache.add("k", b"w", ttl=5)


async def test_no_cache_keeps_nothing() -> None:
    """``none://`` misses every lookup."""
    cache = NoCache()
    await cache.set_many({"k": b"v"}, ttl=30)
    assert await cache.get_many(["k"]) == [None]
    assert not await cache.add("k", b"v", ttl=30)
