"""Which auth store goes with a node's document store."""

from __future__ import annotations

from urllib.parse import urlsplit

from breakwater.auth.store import AuthStore
from breakwater.config import Config
from breakwater.storage import POSTGRES_SCHEMES

AUTH_POOL_SIZE = 4
"""Auth calls are rare next to document writes: a small pool of their own is plenty."""


def auth_store_for(config: Config) -> AuthStore:
    """PostgreSQL next to a PostgreSQL document store, so every node of the region shares users,
    keys and refresh-token families; else a SQLite file in the data directory (not opened)."""
    if urlsplit(config.store_url).scheme in POSTGRES_SCHEMES:
        from breakwater.auth.postgres_store import PostgresAuthStore
        from breakwater.storage.postgres import PostgresSettings

        settings = PostgresSettings.from_url(config.store_url)
        return PostgresAuthStore(
            settings.dsn,
            settings.schema,
            pool_size=min(AUTH_POOL_SIZE, settings.pool_size),
            timeout=settings.timeout,
            connect=settings.host_rotation().connect,
        )
    from breakwater.auth.sqlite_store import SqliteAuthStore

    return SqliteAuthStore(config.data / "auth.db")
