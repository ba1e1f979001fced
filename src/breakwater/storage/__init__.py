"""Stores: the ``Store`` protocol and its backends, chosen by URL scheme."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from breakwater.core.engine import Engine
from breakwater.core.errors import ConfigError
from breakwater.storage.base import CompactionReport, FeedEntry, FeedPage, QueryPage, Store
from breakwater.storage.hooks import NO_HOOKS, StoreHooks

POSTGRES_SCHEMES = ("postgresql", "postgres")
SCHEMES = ("sqlite", *POSTGRES_SCHEMES)

__all__ = [
    "NO_HOOKS",
    "POSTGRES_SCHEMES",
    "CompactionReport",
    "FeedEntry",
    "FeedPage",
    "QueryPage",
    "Store",
    "StoreHooks",
    "open_store",
    "redact_url",
    "sqlite_path",
]


def redact_url(url: str) -> str:
    """``url`` without the password of its user info (safe to log and to show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    parts = urlsplit(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ConfigError(f"store URL {url!r} names no file; use sqlite:///path/to/file.db")
    return Path(path)


def open_store(url: str, engine: Engine, hooks: StoreHooks = NO_HOOKS) -> Store:
    """A store for ``url`` (not yet opened); an unknown scheme lists the supported ones."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from breakwater.storage.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url), engine, hooks=hooks)
    if scheme in POSTGRES_SCHEMES:
        from breakwater.storage.postgres import PostgresStore

        return PostgresStore(url, engine, hooks=hooks)
    raise ConfigError(
        f"store URL {redact_url(url)!r} has an unsupported scheme {scheme!r};"
        f" supported: {', '.join(SCHEMES)}"
    )
