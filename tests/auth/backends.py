"""Auth store backends for tests: one opened store per backend, each on its own storage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from breakwater.auth.postgres_store import Connection, PostgresAuthStore
from breakwater.auth.sqlite_store import SqliteAuthStore
from breakwater.auth.store import AuthStore
from tests.storage.backends import drop_schema, postgres_url

AUTH_BACKENDS = ("sqlite", "postgres")


@contextlib.contextmanager
def opened_auth_store(backend: str, directory: Path) -> Iterator[AuthStore]:
    """An open auth store of ``backend`` (a file in ``directory``, or a schema of its own)."""
    if backend == "sqlite":
        sqlite = SqliteAuthStore(directory / "auth.db")
        sqlite.open()
        try:
            yield sqlite
        finally:
            sqlite.close()
        return
    url, schema = postgres_url(timeout="5")
    parts = urlsplit(url)
    postgres = PostgresAuthStore(parts._replace(query="").geturl(), schema, timeout=5)
    postgres.open()
    try:
        yield postgres
    finally:
        postgres.close()
        asyncio.run(drop_schema(schema))


def token_flags(store: AuthStore, token_hash: str) -> tuple[bool, bool]:
    """``(used, revoked)`` of a stored refresh token, read without changing it."""
    if isinstance(store, SqliteAuthStore):
        with store._tx() as db:
            used, revoked = db.execute(
                "SELECT used, revoked FROM refresh_tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        return bool(used), bool(revoked)
    assert isinstance(store, PostgresAuthStore)

    async def read(conn: Connection) -> tuple[bool, bool]:
        row = await conn.fetchrow(
            "SELECT used, revoked FROM auth_refresh_tokens WHERE token_hash = $1", token_hash
        )
        assert row is not None
        return bool(row[0]), bool(row[1])

    return store._call(read)
