"""The cache: a bounded key-value store of byte strings with expiry, in front of the store.

The server keeps hot document reads and query pages here (see
docs/adr/0006-cache-invalidation.md for how entries are kept from going stale). A cache is an
optimisation only: every value can be recomputed from the store, so a cache may forget anything
at any time, and a cache that fails makes the server read the store instead (I8).

Contract for every backend (checked by tests/cache/test_conformance.py):

- ``get_many`` returns one value or ``None`` per key, in the order given; an expired or evicted
  key is ``None``.
- ``set_many`` stores every item with the same time to live (seconds, positive); a later set of
  a key replaces it.
- ``add`` stores the item only if the key holds nothing, and says whether it did (atomic: of two
  concurrent ``add`` calls for one key, one wins).
- ``replace_many`` stores each item only if its key holds a value, key by key atomically: of an
  ``add`` and a ``replace_many`` of one key, either the add comes first and is replaced, or the
  replace finds nothing and leaves the key empty.
- Failures are :class:`CacheUnavailable` (transient), raised promptly: a backend bounds every
  call with a short timeout. Lifecycle: ``await open()`` … ``await aclose()``.

Backends are chosen by URL scheme with :func:`open_cache`: ``memory://`` (a bounded LRU in this
process, the default), ``redis://`` (shared by the nodes of a region) and ``none://`` (no cache).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from breakwater.core.ascii import is_digits
from breakwater.core.errors import ConfigError, Unavailable

SCHEMES = ("memory", "redis", "none")

__all__ = ["SCHEMES", "Cache", "CacheUnavailable", "open_cache"]


class CacheUnavailable(Unavailable):
    """The cache cannot answer now; the caller reads the store instead."""

    type = "cache_unavailable"
    title = "Cache unavailable"


class Cache(Protocol):
    """A shared or local key-value cache of bytes with expiry."""

    async def open(self) -> None:
        """Connect (if there is anything to connect to); never fails for an unreachable
        server: calls raise :class:`CacheUnavailable` until it answers."""

    async def aclose(self) -> None:
        """Release connections. Idempotent."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The value of every key (``None`` where there is none), in order."""

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store every item for ``ttl`` seconds."""

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` holds nothing; True if it did."""

    async def replace_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store, for ``ttl`` seconds, each item whose key holds a value; leave the others
        empty."""


def _options(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without breakwater's own query parameters, and those parameters."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {"prefix", "max_entries", "max_bytes"}
    options = {key: value for key, value in query if key in ours}
    rest = urlencode([(key, value) for key, value in query if key not in ours])
    return urlunsplit(parts._replace(query=rest)), options


def _positive_int(options: Mapping[str, str], key: str, default: int) -> int:
    raw = options.get(key)
    if raw is None:
        return default
    if not is_digits(raw) or int(raw) <= 0:
        raise ConfigError(f"cache URL parameter {key} = {raw!r} must be a positive integer")
    return int(raw)


def open_cache(url: str, namespace: str = "local") -> Cache:
    """A cache for ``url`` (not yet opened); an unknown scheme lists the supported ones.

    ``memory://?max_entries=N&max_bytes=B`` bounds the LRU; ``redis://…?prefix=NAME`` puts
    every key under ``NAME:`` (default ``breakwater.<namespace>``, the region).
    """
    scheme = urlsplit(url).scheme
    rest, options = _options(url)
    if scheme == "memory":
        from breakwater.cache.memory import MAX_BYTES, MAX_ENTRIES, MemoryCache

        return MemoryCache(
            _positive_int(options, "max_entries", MAX_ENTRIES),
            _positive_int(options, "max_bytes", MAX_BYTES),
        )
    if scheme in ("redis", "rediss"):
        from breakwater.cache.redis import RedisCache

        prefix = options.get("prefix", f"breakwater.{namespace}")
        if not prefix:
            raise ConfigError("the prefix of a cache URL must not be empty")
        return RedisCache(rest, prefix)
    if scheme == "none":
        from breakwater.cache.none import NoCache

        return NoCache()
    # The URL itself is not repeated: a Redis URL may carry a password.
    raise ConfigError(
        f"cache URL has an unsupported scheme {scheme!r}; supported: "
        + ", ".join(f"{name}://" for name in SCHEMES)
    )
