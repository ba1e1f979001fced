"""No cache (``none://``): every lookup misses, so every read goes to the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class NoCache:
    """A :class:`~breakwater.cache.Cache` that keeps nothing."""

    async def open(self) -> None:
        """Nothing to open."""

    async def aclose(self) -> None:
        """Nothing to close."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Nothing is ever found."""
        return [None] * len(keys)

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Keep nothing."""

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Keep nothing (as if another caller had won)."""
        return False

    async def replace_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Nothing is ever there to replace."""
