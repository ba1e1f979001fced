"""The Cache contract, run unchanged against every backend that keeps values (memory, redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from breakwater.cache import Cache, open_cache
from breakwater.core.errors import ConfigError


@pytest.fixture
async def cache(cache_url: str) -> AsyncIterator[Cache]:
    """An open cache of each backend."""
    opened = open_cache(cache_url)
    await opened.open()
    yield opened
    await opened.aclose()


async def test_a_missing_key_is_none(cache: Cache) -> None:
    """Nothing stored, nothing found."""
    assert await cache.get_many(["absent"]) == [None]


async def test_values_come_back_in_the_order_asked(cache: Cache) -> None:
    """``get_many`` answers key by key, misses included."""
    await cache.set_many({"a": b"1", "c/x y": b"3\n\x00"}, ttl=30)
    assert await cache.get_many(["c/x y", "b", "a"]) == [b"3\n\x00", None, b"1"]


async def test_a_set_replaces_the_value(cache: Cache) -> None:
    """The last set of a key wins."""
    await cache.set_many({"k": b"old"}, ttl=30)
    await cache.set_many({"k": b"new"}, ttl=30)
    assert await cache.get_many(["k"]) == [b"new"]


async def test_a_value_expires_after_its_ttl(cache: Cache) -> None:
    """A key is gone once its time to live has passed."""
    await cache.set_many({"short": b"1", "long": b"2"}, ttl=0.2)
    await cache.set_many({"long": b"2"}, ttl=30)
    await asyncio.sleep(0.4)
    assert await cache.get_many(["short", "long"]) == [None, b"2"]


async def test_add_stores_only_into_an_empty_key(cache: Cache) -> None:
    """``add`` refuses a key that holds a value and keeps that value."""
    assert await cache.add("token", b"first", ttl=30)
    assert not await cache.add("token", b"second", ttl=30)
    assert await cache.get_many(["token"]) == [b"first"]


async def test_concurrent_adds_have_one_winner(cache: Cache) -> None:
    """Of many concurrent ``add`` calls for one key exactly one stores its value."""
    results = await asyncio.gather(*(cache.add("race", str(i).encode(), 30) for i in range(20)))
    assert results.count(True) == 1
    [stored] = await cache.get_many(["race"])
    assert stored == str(results.index(True)).encode()


async def test_replace_stores_only_into_a_key_that_holds_a_value(cache: Cache) -> None:
    """``replace_many`` replaces a live value and leaves an empty or expired key empty."""
    await cache.set_many({"held": b"old", "expired": b"old"}, ttl=30)
    await cache.set_many({"expired": b"old"}, ttl=0.1)
    await asyncio.sleep(0.3)
    await cache.replace_many({"held": b"new", "empty": b"new", "expired": b"new"}, ttl=30)
    assert await cache.get_many(["held", "empty", "expired"]) == [b"new", None, None]


async def test_a_replaced_value_lives_for_its_new_ttl(cache: Cache) -> None:
    """``replace_many`` gives the value its own time to live."""
    await cache.set_many({"k": b"old"}, ttl=0.2)
    await cache.replace_many({"k": b"new"}, ttl=30)
    await asyncio.sleep(0.4)
    assert await cache.get_many(["k"]) == [b"new"]


async def test_empty_calls_are_harmless(cache: Cache) -> None:
    """No keys, no items: nothing happens and nothing fails."""
    assert await cache.get_many([]) == []
    await cache.set_many({}, ttl=1)
    await cache.replace_many({}, ttl=1)


async def test_caches_of_other_namespaces_keep_apart(cache_url: str) -> None:
    """Two caches opened on different prefixes (or processes) do not share keys."""
    from tests.cache.conftest import cache_url_for

    backend = "memory" if cache_url.startswith("memory") else "redis"
    first, second = open_cache(cache_url), open_cache(cache_url_for(backend))
    await first.open()
    await second.open()
    try:
        await first.set_many({"k": b"1"}, ttl=30)
        assert await second.get_many(["k"]) == [None]
    finally:
        await first.aclose()
        await second.aclose()


def test_an_unknown_scheme_lists_the_supported_ones() -> None:
    """``open_cache`` refuses an unknown scheme naming every supported one, never the URL."""
    with pytest.raises(ConfigError, match=r"supported: memory://, redis://, none://") as info:
        open_cache("memcached://user:hunter2@host/")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("url", ["memory://?max_entries=0", "memory://?max_bytes=x"])
def test_a_bad_bound_is_refused(url: str) -> None:
    """Memory bounds must be positive integers."""
    with pytest.raises(ConfigError):
        open_cache(url)
