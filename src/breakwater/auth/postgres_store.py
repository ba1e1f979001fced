"""The ``AuthStore`` on PostgreSQL: every node of a region shares its users, keys and tokens.

Chosen when the document store is PostgreSQL, in the same schema (tables prefixed ``auth_``,
versioned by ``auth_migrations``), so that two nodes over one database agree on accounts, API
keys and refresh-token families: a refresh token used on one node and replayed on another is
reuse there too, and revokes its family.

The protocol is synchronous (the auth service calls it from worker threads, next to password
hashing); asyncpg is not. So the store owns a private event loop in one thread, and each call
runs one transaction there and waits for it, bounded by the statement timeout. The pool is
created lazily, on the first call that finds the server: a node starts while PostgreSQL is down
(I8), and every call until it returns raises ``StoreUnavailable`` (503, ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from breakwater.auth.records import (
    Account,
    ApiKey,
    LinkedIdentity,
    OidcFlow,
    OneTimeToken,
    RefreshToken,
)
from breakwater.auth.store import EmailTaken, IdentityTaken, RotateOutcome
from breakwater.core.errors import StoreIncompatible, StoreUnavailable

T = TypeVar("T")
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Row: TypeAlias = "Sequence[Any] | asyncpg.Record"
_DB_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

MIGRATIONS: tuple[str, ...] = (
    # 1: the same records as the SQLite auth store; text compared in byte order ("C").
    """
    CREATE TABLE auth_accounts (
        uid text COLLATE "C" PRIMARY KEY,
        email text COLLATE "C" UNIQUE,
        password_hash text,
        anonymous boolean NOT NULL,
        roles text NOT NULL,
        created_ms bigint NOT NULL,
        totp_secret text,
        totp_enabled boolean NOT NULL DEFAULT false,
        recovery_hashes text NOT NULL DEFAULT '[]',
        totp_last_step bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE auth_refresh_tokens (
        token_hash text COLLATE "C" PRIMARY KEY,
        family text COLLATE "C" NOT NULL,
        uid text COLLATE "C" NOT NULL,
        created_ms bigint NOT NULL,
        expires_ms bigint NOT NULL,
        amr text NOT NULL DEFAULT '[]',
        used boolean NOT NULL DEFAULT false,
        revoked boolean NOT NULL DEFAULT false
    );
    CREATE INDEX auth_refresh_family ON auth_refresh_tokens (family);
    CREATE INDEX auth_refresh_uid ON auth_refresh_tokens (uid);
    CREATE TABLE auth_api_keys (
        key_id text COLLATE "C" PRIMARY KEY,
        name text NOT NULL,
        scopes text NOT NULL,
        secret_hash text NOT NULL,
        created_ms bigint NOT NULL,
        revoked_ms bigint
    );
    """,
    # 2: the account lifecycle (ADR 0026): verified emails, disabled accounts, mailed tokens.
    """
    ALTER TABLE auth_accounts ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
    ALTER TABLE auth_accounts ADD COLUMN disabled boolean NOT NULL DEFAULT false;
    ALTER TABLE auth_accounts ADD COLUMN deleted_ms bigint;
    CREATE TABLE auth_one_time_tokens (
        token_hash text COLLATE "C" PRIMARY KEY,
        purpose text COLLATE "C" NOT NULL,
        uid text COLLATE "C" NOT NULL,
        email text NOT NULL,
        created_ms bigint NOT NULL,
        expires_ms bigint NOT NULL
    );
    CREATE INDEX auth_one_time_uid ON auth_one_time_tokens (uid, purpose);
    """,
    # 3: OpenID Connect: identities linked to accounts, and started sign-ins.
    """
    CREATE TABLE auth_identities (
        provider text COLLATE "C" NOT NULL,
        sub text COLLATE "C" NOT NULL,
        uid text COLLATE "C" NOT NULL,
        created_ms bigint NOT NULL,
        PRIMARY KEY (provider, sub)
    );
    CREATE INDEX auth_identities_uid ON auth_identities (uid);
    CREATE TABLE auth_oidc_flows (
        state_hash text COLLATE "C" PRIMARY KEY,
        provider text NOT NULL,
        nonce text NOT NULL,
        redirect_uri text NOT NULL,
        expires_ms bigint NOT NULL
    );
    """,
)
_DAY_MS = 86_400_000
"""Flows older than a day are surely expired (``flow_ttl`` is minutes): dropped on insert."""

_ACCOUNT_COLUMNS = (
    "uid, email, password_hash, anonymous, roles, created_ms, totp_secret, totp_enabled,"
    " recovery_hashes, totp_last_step, email_verified, disabled"
)
_INSERT_ACCOUNT = (
    f"INSERT INTO auth_accounts ({_ACCOUNT_COLUMNS}) VALUES"
    f" ({', '.join(f'${n}' for n in range(1, len(_ACCOUNT_COLUMNS.split(',')) + 1))})"
)
_ONE_TIME_COLUMNS = "token_hash, purpose, uid, email, created_ms, expires_ms"
_TOMBSTONE = (
    "email = NULL, password_hash = NULL, roles = '[]', totp_secret = NULL, totp_enabled = false,"
    " recovery_hashes = '[]', email_verified = false, disabled = true, deleted_ms = $2"
)
"""What an erased account keeps: its uid, disabled (see the SQLite store)."""
_KEY_COLUMNS = "key_id, name, scopes, secret_hash, created_ms, revoked_ms"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _account(row: Row) -> Account:
    return Account(
        uid=row[0],
        email=row[1],
        password_hash=row[2],
        anonymous=row[3],
        roles=tuple(json.loads(row[4])),
        created_ms=row[5],
        totp_secret=row[6],
        totp_enabled=row[7],
        recovery_hashes=tuple(json.loads(row[8])),
        totp_last_step=row[9],
        email_verified=row[10],
        disabled=row[11],
    )


def _account_row(a: Account) -> tuple[Any, ...]:
    return (
        a.uid,
        a.email.lower() if a.email else None,
        a.password_hash,
        a.anonymous,
        json.dumps(list(a.roles)),
        a.created_ms,
        a.totp_secret,
        a.totp_enabled,
        json.dumps(list(a.recovery_hashes)),
        a.totp_last_step,
        a.email_verified,
        a.disabled,
    )


def _key(row: Row) -> ApiKey:
    return ApiKey(row[0], row[1], frozenset(json.loads(row[2])), row[3], row[4], row[5])


async def _insert_refresh(conn: Connection, t: RefreshToken) -> None:
    await conn.execute(
        "INSERT INTO auth_refresh_tokens (token_hash, family, uid, created_ms, expires_ms, amr)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        t.token_hash,
        t.family,
        t.uid,
        t.created_ms,
        t.expires_ms,
        json.dumps(list(t.amr)),
    )


async def migrate(conn: asyncpg.Connection, schema: str) -> None:
    """Bring the auth tables of ``schema`` to the newest version, once across nodes."""
    lock = f"breakwater-migrate:{schema}"  # the document store's migration lock: one at a time
    for version, script in enumerate(MIGRATIONS, start=1):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
            await conn.execute(f"SET LOCAL search_path TO {_quote(schema)}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS auth_migrations"
                " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            newest = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM auth_migrations")
            if newest > len(MIGRATIONS):
                raise StoreIncompatible(
                    f"the auth tables of schema {schema!r} are at version {newest}, newer than"
                    f" this Breakwater ({len(MIGRATIONS)}); upgrade Breakwater"
                )
            if newest >= version:
                continue
            await conn.execute(script)
            await conn.execute("INSERT INTO auth_migrations (version) VALUES ($1)", version)


class Connector(Protocol):
    """What stands in for ``asyncpg.connect``."""

    async def __call__(self, *args: Any, **kwargs: Any) -> asyncpg.Connection: ...


class PostgresAuthStore:
    """``AuthStore`` in a PostgreSQL schema (see :mod:`breakwater.auth.store` for the contract)."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        *,
        pool_size: int = 4,
        timeout: float = 10.0,
        connect: Connector = asyncpg.connect,
    ) -> None:
        """``connect`` stands in for ``asyncpg.connect`` (the document store's host rotation,
        so that both follow a failover alike)."""
        self.dsn = dsn
        self._connect = connect
        self.schema = schema
        self.pool_size = pool_size
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock: asyncio.Lock | None = None

    # lifecycle ----------------------------------------------------------------------------------

    def open(self) -> None:
        """Start the store's event loop; the database is reached on first use."""
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._pool_lock = asyncio.Lock()
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="bw-auth-postgres", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop

    def close(self) -> None:
        """Close the pool and stop the loop. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        close = asyncio.run_coroutine_threadsafe(self._close_pool(), loop)
        try:
            close.result(self.timeout + 1)
        except (concurrent.futures.TimeoutError, *_DB_ERRORS):
            pass  # the connections die with the loop
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout + 1)
        loop.close()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except _DB_ERRORS:
                pool.terminate()

    async def _ready_pool(self) -> asyncpg.Pool:
        """The pool, created (and the schema migrated) on the first call that reaches the
        server."""
        if self._pool is not None:
            return self._pool
        assert self._pool_lock is not None
        async with self._pool_lock:
            if self._pool is None:
                conn = await self._connect(self.dsn, timeout=self.timeout)
                try:
                    await migrate(conn, self.schema)
                finally:
                    await conn.close()
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.timeout,
                    command_timeout=self.timeout,
                    connect=self._connect,
                    server_settings={
                        "synchronous_commit": "on",
                        "search_path": _quote(self.schema),
                        "application_name": "breakwater auth",
                    },
                )
            return self._pool

    def _call(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction on the store's loop and wait for its result."""
        loop = self._loop
        if loop is None:
            raise StoreUnavailable("the auth store is closed")
        future = asyncio.run_coroutine_threadsafe(self._transaction(work), loop)
        try:
            return future.result(3 * self.timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise StoreUnavailable("the auth store did not answer in time") from exc

    async def _transaction(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        try:
            pool = await self._ready_pool()
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "auth_accounts_email_key":
                raise EmailTaken("an account with this email exists") from exc
            if exc.constraint_name == "auth_identities_pkey":
                raise IdentityTaken("this identity is linked to an account already") from exc
            raise StoreUnavailable("the auth store refused a duplicate record") from exc
        except _DB_ERRORS as exc:
            if self._pool is not None:
                await self._pool.expire_connections()
            # The kind of failure only: a server's message may quote data.
            raise StoreUnavailable(f"the auth store failed ({type(exc).__name__})") from exc

    # accounts -----------------------------------------------------------------------------------

    def create_account(self, account: Account) -> None:
        """Insert a new account."""

        async def work(conn: Connection) -> None:
            await conn.execute(_INSERT_ACCOUNT, *_account_row(account))

        self._call(work)

    def _one_account(self, where: str, value: str) -> Account | None:
        async def work(conn: Connection) -> Account | None:
            row = await conn.fetchrow(
                f"SELECT {_ACCOUNT_COLUMNS} FROM auth_accounts"
                f" WHERE {where} = $1 AND deleted_ms IS NULL",
                value,
            )
            return None if row is None else _account(row)

        return self._call(work)

    def account(self, uid: str) -> Account | None:
        """The account ``uid``."""
        return self._one_account("uid", uid)

    def account_by_email(self, email: str) -> Account | None:
        """The account with ``email``."""
        return self._one_account("email", email.lower())

    def delete_account(self, uid: str, now_ms: int) -> bool:
        """Erase the account to its tombstone and remove its tokens, in one transaction."""

        async def work(conn: Connection) -> bool:
            async with conn.transaction():
                await conn.execute("DELETE FROM auth_refresh_tokens WHERE uid = $1", uid)
                await conn.execute("DELETE FROM auth_identities WHERE uid = $1", uid)
                await conn.execute("DELETE FROM auth_one_time_tokens WHERE uid = $1", uid)
                status = await conn.execute(
                    f"UPDATE auth_accounts SET {_TOMBSTONE} WHERE uid = $1 AND deleted_ms IS NULL",
                    uid,
                    now_ms,
                )
            return bool(status != "UPDATE 0")

        return self._call(work)

    def disabled_uids(self) -> frozenset[str]:
        """Every disabled account's uid."""

        async def work(conn: Connection) -> frozenset[str]:
            rows = await conn.fetch("SELECT uid FROM auth_accounts WHERE disabled")
            return frozenset(str(row[0]) for row in rows)

        return self._call(work)

    def find_accounts(self, text: str, limit: int) -> Sequence[Account]:
        """Accounts by uid or email prefix, by email (left(): no LIKE wildcards to escape)."""
        text = text.lower()

        async def work(conn: Connection) -> list[Account]:
            rows = await conn.fetch(
                f"SELECT {_ACCOUNT_COLUMNS} FROM auth_accounts"
                " WHERE deleted_ms IS NULL AND (uid = $1 OR left(email, $2) = $1)"
                " ORDER BY email, uid LIMIT $3",
                text,
                len(text),
                limit,
            )
            return [_account(row) for row in rows]

        return self._call(work)

    def update_account(self, account: Account) -> None:
        """Replace an account's fields."""
        row = _account_row(account)

        async def work(conn: Connection) -> None:
            await conn.execute(
                "UPDATE auth_accounts SET email = $2, password_hash = $3, anonymous = $4,"
                " roles = $5, created_ms = $6, totp_secret = $7, totp_enabled = $8,"
                " recovery_hashes = $9, totp_last_step = $10, email_verified = $11, disabled = $12"
                " WHERE uid = $1 AND deleted_ms IS NULL",
                *row,
            )

        self._call(work)

    # refresh tokens -----------------------------------------------------------------------------

    def add_refresh(self, token: RefreshToken) -> None:
        """Store a refresh token."""

        async def work(conn: Connection) -> None:
            await _insert_refresh(conn, token)

        self._call(work)

    def rotate_refresh(
        self, old_hash: str, new: RefreshToken | None, now_ms: int
    ) -> tuple[RotateOutcome, RefreshToken | None]:
        """Use a token once; reuse revokes its family (the row lock orders racing nodes)."""

        async def work(conn: Connection) -> tuple[RotateOutcome, RefreshToken | None]:
            row = await conn.fetchrow(
                "SELECT family, uid, created_ms, expires_ms, amr, used, revoked"
                " FROM auth_refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                old_hash,
            )
            if row is None:
                return "unknown", None
            family, uid, created_ms, expires_ms, amr, used, revoked = row
            old = RefreshToken(
                old_hash, family, uid, created_ms, expires_ms, tuple(json.loads(amr))
            )
            if used or revoked:
                await conn.execute(
                    "UPDATE auth_refresh_tokens SET revoked = true WHERE family = $1", family
                )
                return "reused", old
            if expires_ms <= now_ms:
                return "expired", old
            await conn.execute(
                "UPDATE auth_refresh_tokens SET used = true WHERE token_hash = $1", old_hash
            )
            if new is not None:
                await _insert_refresh(
                    conn,
                    RefreshToken(
                        new.token_hash, family, uid, new.created_ms, new.expires_ms, old.amr
                    ),
                )
            return "rotated", old

        return self._call(work)

    def _revoke_where(self, column: str, value: str) -> None:
        async def work(conn: Connection) -> None:
            await conn.execute(
                f"UPDATE auth_refresh_tokens SET revoked = true WHERE {column} = $1", value
            )

        self._call(work)

    def revoke_family(self, family: str) -> None:
        """Revoke a family."""
        self._revoke_where("family", family)

    def revoke_user(self, uid: str) -> None:
        """Revoke every family of a user."""
        self._revoke_where("uid", uid)

    def family_of(self, token_hash: str) -> str | None:
        """The family of a token."""

        async def work(conn: Connection) -> str | None:
            family: str | None = await conn.fetchval(
                "SELECT family FROM auth_refresh_tokens WHERE token_hash = $1", token_hash
            )
            return family

        return self._call(work)

    # one-time tokens ----------------------------------------------------------------------------

    def add_one_time(self, token: OneTimeToken) -> None:
        """Store a mailed token; the user's expired tokens of that purpose go."""

        async def work(conn: Connection) -> None:
            await conn.execute(
                "DELETE FROM auth_one_time_tokens"
                " WHERE uid = $1 AND purpose = $2 AND expires_ms <= $3",
                token.uid,
                token.purpose,
                token.created_ms,
            )
            await conn.execute(
                f"INSERT INTO auth_one_time_tokens ({_ONE_TIME_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                token.token_hash,
                token.purpose,
                token.uid,
                token.email,
                token.created_ms,
                token.expires_ms,
            )

        self._call(work)

    def use_one_time(self, token_hash: str, purpose: str, now_ms: int) -> OneTimeToken | None:
        """Spend a token (the row lock orders racing nodes); its user's other tokens of that
        purpose go with it."""

        async def work(conn: Connection) -> OneTimeToken | None:
            row = await conn.fetchrow(
                f"SELECT {_ONE_TIME_COLUMNS} FROM auth_one_time_tokens"
                " WHERE token_hash = $1 AND purpose = $2 FOR UPDATE",
                token_hash,
                purpose,
            )
            if row is None:
                return None
            token = OneTimeToken(*row)
            await conn.execute(
                "DELETE FROM auth_one_time_tokens WHERE uid = $1 AND purpose = $2",
                token.uid,
                purpose,
            )
            return token if token.expires_ms > now_ms else None

        return self._call(work)

    # API keys -----------------------------------------------------------------------------------

    def add_key(self, key: ApiKey) -> None:
        """Store an API key."""

        async def work(conn: Connection) -> None:
            await conn.execute(
                "INSERT INTO auth_api_keys (key_id, name, scopes, secret_hash, created_ms)"
                " VALUES ($1, $2, $3, $4, $5)",
                key.key_id,
                key.name,
                json.dumps(sorted(key.scopes)),
                key.secret_hash,
                key.created_ms,
            )

        self._call(work)

    def key(self, key_id: str) -> ApiKey | None:
        """One key."""

        async def work(conn: Connection) -> ApiKey | None:
            row = await conn.fetchrow(
                f"SELECT {_KEY_COLUMNS} FROM auth_api_keys WHERE key_id = $1", key_id
            )
            return None if row is None else _key(row)

        return self._call(work)

    def keys(self) -> Sequence[ApiKey]:
        """Every key, oldest first."""

        async def work(conn: Connection) -> list[ApiKey]:
            rows = await conn.fetch(
                f"SELECT {_KEY_COLUMNS} FROM auth_api_keys ORDER BY created_ms, key_id"
            )
            return [_key(row) for row in rows]

        return self._call(work)

    def revoke_key(self, key_id: str, now_ms: int) -> bool:
        """Revoke a live key."""

        async def work(conn: Connection) -> bool:
            status: str = await conn.execute(
                "UPDATE auth_api_keys SET revoked_ms = $1 WHERE key_id = $2 AND revoked_ms IS NULL",
                now_ms,
                key_id,
            )
            return status == "UPDATE 1"

        return self._call(work)

    # OpenID Connect -----------------------------------------------------------------------------

    def create_linked_account(self, account: Account, identity: LinkedIdentity) -> None:
        """Insert the account and its identity in one transaction."""

        async def work(conn: Connection) -> None:
            await _insert_identity(conn, identity)
            await conn.execute(_INSERT_ACCOUNT, *_account_row(account))

        self._call(work)

    def add_identity(self, identity: LinkedIdentity) -> None:
        """Link an identity (the primary key refuses a second owner)."""

        async def work(conn: Connection) -> None:
            await _insert_identity(conn, identity)

        self._call(work)

    def identity_owner(self, provider: str, sub: str) -> str | None:
        """The uid of an identity."""

        async def work(conn: Connection) -> str | None:
            uid: str | None = await conn.fetchval(
                "SELECT uid FROM auth_identities WHERE provider = $1 AND sub = $2", provider, sub
            )
            return uid

        return self._call(work)

    def identities(self, uid: str) -> Sequence[LinkedIdentity]:
        """The identities of an account."""

        async def work(conn: Connection) -> list[LinkedIdentity]:
            rows = await conn.fetch(
                "SELECT provider, sub, uid, created_ms FROM auth_identities WHERE uid = $1"
                " ORDER BY created_ms, provider",
                uid,
            )
            return [LinkedIdentity(*row) for row in rows]

        return self._call(work)

    def add_flow(self, flow: OidcFlow) -> None:
        """Store a flow; expired ones go."""

        async def work(conn: Connection) -> None:
            await conn.execute(
                "DELETE FROM auth_oidc_flows WHERE expires_ms <= $1", flow.expires_ms - _DAY_MS
            )
            await conn.execute(
                "INSERT INTO auth_oidc_flows (state_hash, provider, nonce, redirect_uri,"
                " expires_ms) VALUES ($1, $2, $3, $4, $5)",
                flow.state_hash,
                flow.provider,
                flow.nonce,
                flow.redirect_uri,
                flow.expires_ms,
            )

        self._call(work)

    def take_flow(self, state_hash: str, now_ms: int) -> OidcFlow | None:
        """Spend a flow (DELETE ... RETURNING: one of racing callbacks gets it)."""

        async def work(conn: Connection) -> OidcFlow | None:
            row = await conn.fetchrow(
                "DELETE FROM auth_oidc_flows WHERE state_hash = $1"
                " RETURNING state_hash, provider, nonce, redirect_uri, expires_ms",
                state_hash,
            )
            return None if row is None else OidcFlow(*row)

        flow = self._call(work)
        return flow if flow is not None and flow.expires_ms > now_ms else None


async def _insert_identity(conn: Connection, identity: LinkedIdentity) -> None:
    await conn.execute(
        "INSERT INTO auth_identities (provider, sub, uid, created_ms) VALUES ($1, $2, $3, $4)",
        identity.provider,
        identity.sub,
        identity.uid,
        identity.created_ms,
    )
