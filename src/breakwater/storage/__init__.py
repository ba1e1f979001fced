"""Stores: the ``Store`` protocol and its backends, chosen by URL scheme."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from breakwater.core.engine import Engine
from breakwater.storage.base import CompactionReport, FeedEntry, FeedPage, QueryPage, Store
from breakwater.storage.hooks import NO_HOOKS, StoreHooks

SCHEMES = ("sqlite",)

__all__ = [
    "NO_HOOKS",
    "CompactionReport",
    "FeedEntry",
    "FeedPage",
    "QueryPage",
    "Store",
    "StoreHooks",
    "open_store",
    "sqlite_path",
]


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    parts = urlsplit(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ValueError(f"store URL {url!r} names no file; use sqlite:///path/to/file.db")
    return Path(path)


def open_store(url: str, engine: Engine, hooks: StoreHooks = NO_HOOKS) -> Store:
    """A store for ``url`` (not yet opened); an unknown scheme lists the supported ones."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from breakwater.storage.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url), engine, hooks=hooks)
    raise ValueError(
        f"store URL {url!r} has an unsupported scheme {scheme!r}; supported: {', '.join(SCHEMES)}"
    )
