"""One SQL seam under the webhook store: SQLite in the data directory, or the region's PostgreSQL.

The store writes its statements once, with ``?`` placeholders and SQL both engines accept
(``INSERT ... ON CONFLICT ... DO UPDATE ... WHERE``); the PostgreSQL side numbers the
placeholders. Driver errors never escape: a database that cannot serve raises
``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from breakwater.core.errors import StoreUnavailable
from breakwater.core.sqlite_wal import enable_wal

Row = Sequence[Any]
T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\?")
_PG_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class Database(Protocol):
    """Statements, each in a transaction of its own. Lifecycle: ``open`` … ``aclose``."""

    async def open(self, schema: str) -> None:
        """Connect and run ``schema`` (idempotent DDL)."""

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of arguments, in one transaction."""

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Run one query; its rows."""

    async def aclose(self) -> None:
        """Release the connections. Idempotent."""


class SqliteDatabase:
    """A SQLite file of its own, one connection behind a lock, called from worker threads.

    WAL with ``synchronous=NORMAL``: a commit survives the process crashing; a power loss may
    lose the last commits, but only a suffix of them (WAL replays in order). For delivery that
    is safe: a lost cursor save moves the cursor back (changes are delivered again, at least
    once), and a cursor save that survived means every dead letter and log row before it did.
    An fsync per delivery attempt would cost more than the delivery (ADR 0025).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self, schema: str) -> None:
        """Create the file (owner-only: it holds the subscriptions' secrets) and the tables."""
        await asyncio.to_thread(self._open, schema)

    def _open(self, schema: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 5000")
            enable_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(schema)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"the webhook store {str(self.path)!r} cannot be opened"
            ) from exc
        self._db = db

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement."""
        return await asyncio.to_thread(self._run, sql, args, lambda cursor: cursor.rowcount)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row in one transaction (one commit for a page's log)."""
        await asyncio.to_thread(self._run_many, sql, rows)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Run one query."""
        return await asyncio.to_thread(self._run, sql, args, lambda cursor: cursor.fetchall())

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            if self._db is None:
                raise StoreUnavailable("the webhook store is closed")
            try:
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.executemany(sql, [tuple(row) for row in rows])
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the webhook store failed ({type(exc).__name__})") from exc

    def _run(self, sql: str, args: Sequence[Any], read: Callable[[sqlite3.Cursor], T]) -> T:
        """Run and read the result under the lock (one connection is shared by threads)."""
        with self._lock:
            if self._db is None:
                raise StoreUnavailable("the webhook store is closed")
            try:
                return read(self._db.execute(sql, tuple(args)))
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the webhook store failed ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class PostgresDatabase:
    """The region's PostgreSQL (tables ``webhook_*`` next to the documents), so that every node
    of a region shares subscriptions, cursors, logs and the deliverer's lease."""

    def __init__(self, dsn: str, schema: str, *, pool_size: int, timeout: float) -> None:
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None

    async def open(self, schema: str) -> None:
        """Create the pool and the tables (once across nodes: an advisory lock)."""
        quoted = '"' + self.schema.replace('"', '""') + '"'
        try:
            conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
            try:
                async with conn.transaction():
                    lock = f"breakwater-migrate:{self.schema}"
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lock
                    )
                    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
                    await conn.execute(f"SET LOCAL search_path TO {quoted}")
                    await conn.execute(schema)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                timeout=self.timeout,
                command_timeout=self.timeout,
                server_settings={
                    "search_path": quoted,
                    "application_name": "breakwater webhooks",
                },
            )
        except _PG_ERRORS as exc:
            raise StoreUnavailable(f"the webhook store failed ({type(exc).__name__})") from exc

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; asyncpg answers a status such as ``UPDATE 2``."""
        status = await self._call("execute", sql, args)
        return int(status.rsplit(" ", 1)[-1]) if status.rsplit(" ", 1)[-1].isdigit() else 0

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row (asyncpg's executemany is one transaction)."""
        await self._call("executemany", sql, [tuple(row) for row in rows], spread=False)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Run one query."""
        return [tuple(row) for row in await self._call("fetch", sql, args)]

    async def _call(
        self, method: str, sql: str, args: Sequence[Any], *, spread: bool = True
    ) -> Any:
        if self._pool is None:
            raise StoreUnavailable("the webhook store is closed")
        numbered = iter(range(1, sql.count("?") + 1))
        text = _PLACEHOLDER.sub(lambda _: f"${next(numbered)}", sql)
        try:
            async with self._pool.acquire() as conn:
                call = getattr(conn, method)
                return await (call(text, *args) if spread else call(text, args))
        except _PG_ERRORS as exc:
            raise StoreUnavailable(f"the webhook store failed ({type(exc).__name__})") from exc

    async def aclose(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
