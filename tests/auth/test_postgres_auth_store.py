"""The PostgreSQL auth store's own concerns: migrating once across nodes, refusing a newer
schema, and answering StoreUnavailable (never a driver error) while the server is away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from breakwater.auth.postgres_store import MIGRATIONS, PostgresAuthStore
from breakwater.core.errors import StoreIncompatible, StoreUnavailable
from tests.forwarder import Forwarder
from tests.services import POSTGRES_URL, require_service
from tests.storage.backends import drop_schema, postgres_url


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A schema name of this test's own (dropped afterwards)."""
    _, name = postgres_url()
    yield name
    await drop_schema(name)


def store_on(schema: str, dsn: str = POSTGRES_URL) -> PostgresAuthStore:
    """An opened auth store on ``schema``."""
    store = PostgresAuthStore(dsn, schema, timeout=5)
    store.open()
    return store


async def test_nodes_starting_together_migrate_the_auth_tables_once(schema: str) -> None:
    """Four stores' first calls race on a fresh schema: all answer, one row per migration."""
    stores = [store_on(schema) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    answers: list[object] = []

    def first_call(store: PostgresAuthStore) -> None:
        barrier.wait()
        answers.append(store.account("nobody"))

    try:
        await asyncio.gather(*(asyncio.to_thread(first_call, s) for s in stores))
    finally:
        for store in stores:
            store.close()
    assert answers == [None] * 4
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".auth_migrations')
    finally:
        await conn.close()
    assert sorted(row[0] for row in rows) == list(range(1, len(MIGRATIONS) + 1))


async def test_auth_tables_from_a_newer_breakwater_are_refused(schema: str) -> None:
    """A version this code does not know is StoreUnavailable naming it, and nothing changes."""

    def migrate_and_close() -> None:
        store = store_on(schema)
        store.account("x")
        store.close()

    await asyncio.to_thread(migrate_and_close)
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'INSERT INTO "{schema}".auth_migrations (version) VALUES (99)')
    finally:
        await conn.close()
    store = store_on(schema)
    try:
        with pytest.raises(StoreIncompatible, match="newer than this Breakwater"):
            await asyncio.to_thread(store.account, "x")
    finally:
        store.close()


async def test_an_unreachable_server_is_store_unavailable_until_it_returns(schema: str) -> None:
    """Cut: every call raises StoreUnavailable without the password; restored: it answers."""
    forwarder = Forwarder(require_service(POSTGRES_URL))
    await forwarder.start()
    await forwarder.cut()
    netloc = f"postgres:s3cret@127.0.0.1:{forwarder.port}"
    store = store_on(schema, urlunsplit(urlsplit(POSTGRES_URL)._replace(netloc=netloc)))
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await asyncio.to_thread(store.account, "x")
        assert "s3cret" not in str(caught.value)
        assert not isinstance(caught.value.__cause__, StoreUnavailable)
        await forwarder.restore()
        assert await asyncio.to_thread(store.account, "x") is None
    finally:
        await asyncio.to_thread(store.close)  # its connections pass the forwarder on this loop
        await forwarder.aclose()


async def test_auth_tables_of_version_1_gain_the_account_lifecycle_and_keep_their_rows(
    schema: str,
) -> None:
    """A schema written before accounts could be disabled or verified is migrated in place:
    its accounts stay, enabled and unverified."""
    conn = await asyncpg.connect(require_service(POSTGRES_URL))
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"')
        await conn.execute(MIGRATIONS[0])
        await conn.execute(
            "CREATE TABLE auth_migrations (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now());"
            " INSERT INTO auth_migrations VALUES (1)"
        )
        await conn.execute(
            "INSERT INTO auth_accounts (uid, email, password_hash, anonymous, roles, created_ms)"
            " VALUES ('u1', 'old@example.com', 'h', false, '[]', 1)"
        )
    finally:
        await conn.close()
    store = await asyncio.to_thread(store_on, schema)
    try:
        account = await asyncio.to_thread(store.account, "u1")
        assert account is not None and account.email == "old@example.com"
        assert (account.disabled, account.email_verified) == (False, False)
        assert await asyncio.to_thread(store.disabled_uids) == frozenset()
    finally:
        store.close()
