"""The webhook store: subscriptions, their durable feed cursors, delivery logs and dead letters
(the deliverer's lease is the document store's ``take_lease``, ADR 0025).

Contract:

- ``save_cursor`` is durable when it returns: a node that crashes later resumes the
  subscription from there, so a change past the cursor is delivered at least once.
- ``add_dead_letter`` is idempotent per ``(sub_id, delivery_id)``; ``queue_redelivery`` moves a
  dead letter to ``queued`` once (False if there is no dead one).
- Errors of the database never escape: ``StoreUnavailable``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from breakwater.config import Config
from breakwater.core.cursor import VersionVector
from breakwater.server.webhooks._database import Database, Row
from breakwater.server.webhooks.records import Attempt, DeadLetter, LetterState, Subscription

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    sub_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    collections TEXT NOT NULL,
    operations TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    description TEXT NOT NULL,
    cursor TEXT
);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    sub_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    latency_ms DOUBLE PRECISION NOT NULL,
    error TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_sub ON webhook_attempts (sub_id, at_ms);
CREATE TABLE IF NOT EXISTS webhook_dead_letters (
    sub_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (sub_id, delivery_id)
);
"""
_SUB_COLUMNS = "sub_id, url, collections, operations, secret, created_ms, description"
_LETTER_COLUMNS = "sub_id, delivery_id, payload, attempts, error, at_ms, state"
_ATTEMPT_COLUMNS = "sub_id, delivery_id, attempt, outcome, status, latency_ms, error, at_ms"
POOL_SIZE = 4


def _subscription(row: Row) -> Subscription:
    return Subscription(
        sub_id=row[0],
        url=row[1],
        collections=tuple(json.loads(row[2])),
        operations=tuple(json.loads(row[3])),
        secret=row[4],
        created_ms=int(row[5]),
        description=row[6],
    )


def _letter(row: Row) -> DeadLetter:
    return DeadLetter(
        row[0], row[1], row[2].encode("utf-8"), int(row[3]), row[4], int(row[5]), row[6]
    )


def _attempt(row: Row) -> Attempt:
    return Attempt(row[0], row[1], int(row[2]), row[3], row[4], float(row[5]), row[6], int(row[7]))


class WebhookStore:
    """The webhook tables over one :class:`Database` (see the module docstring)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def open(self) -> None:
        """Create the tables."""
        await self.database.open(SCHEMA)

    async def aclose(self) -> None:
        """Release the database. Idempotent."""
        await self.database.aclose()

    # subscriptions ------------------------------------------------------------------------------

    async def add(self, subscription: Subscription, cursor: VersionVector | None) -> None:
        """Store a new subscription that starts after ``cursor`` (at the head when None)."""
        s = subscription
        await self.database.execute(
            f"INSERT INTO webhook_subscriptions ({_SUB_COLUMNS}, cursor)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                s.sub_id,
                s.url,
                json.dumps(list(s.collections)),
                json.dumps(list(s.operations)),
                s.secret,
                s.created_ms,
                s.description,
                None if cursor is None else json.dumps(cursor),
            ),
        )

    async def update(self, subscription: Subscription) -> bool:
        """Replace the editable fields (url, collections, operations, description); False if
        there is no such subscription. The cursor and the secret stay."""
        s = subscription
        changed = await self.database.execute(
            "UPDATE webhook_subscriptions SET url = ?, collections = ?, operations = ?,"
            " description = ? WHERE sub_id = ?",
            (
                s.url,
                json.dumps(list(s.collections)),
                json.dumps(list(s.operations)),
                s.description,
                s.sub_id,
            ),
        )
        return changed > 0

    async def subscriptions(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        rows = await self.database.fetch(
            f"SELECT {_SUB_COLUMNS} FROM webhook_subscriptions ORDER BY created_ms, sub_id"
        )
        return [_subscription(row) for row in rows]

    async def subscription(self, sub_id: str) -> Subscription | None:
        """The subscription ``sub_id``, if any."""
        rows = await self.database.fetch(
            f"SELECT {_SUB_COLUMNS} FROM webhook_subscriptions WHERE sub_id = ?", (sub_id,)
        )
        return _subscription(rows[0]) if rows else None

    async def remove(self, sub_id: str) -> bool:
        """Delete a subscription with its logs and dead letters; False if there was none."""
        removed = await self.database.execute(
            "DELETE FROM webhook_subscriptions WHERE sub_id = ?", (sub_id,)
        )
        await self.database.execute("DELETE FROM webhook_attempts WHERE sub_id = ?", (sub_id,))
        await self.database.execute("DELETE FROM webhook_dead_letters WHERE sub_id = ?", (sub_id,))
        return removed > 0

    async def cursor(self, sub_id: str) -> VersionVector | None:
        """Where the subscription's delivery stands (None: not started, or no subscription)."""
        rows = await self.database.fetch(
            "SELECT cursor FROM webhook_subscriptions WHERE sub_id = ?", (sub_id,)
        )
        if not rows or rows[0][0] is None:
            return None
        vector: VersionVector = json.loads(rows[0][0])
        return vector

    async def cursors(self) -> dict[str, VersionVector]:
        """Every started subscription's cursor, by id (what a peer region learns, ADR 0042)."""
        rows = await self.database.fetch(
            "SELECT sub_id, cursor FROM webhook_subscriptions WHERE cursor IS NOT NULL", ()
        )
        return {str(row[0]): json.loads(row[1]) for row in rows}

    async def save_cursor(self, sub_id: str, cursor: VersionVector) -> None:
        """Every change up to ``cursor`` was delivered or dead-lettered (durable on return)."""
        await self.database.execute(
            "UPDATE webhook_subscriptions SET cursor = ? WHERE sub_id = ?",
            (json.dumps(cursor), sub_id),
        )

    # delivery log -------------------------------------------------------------------------------

    async def log(self, attempts: Sequence[Attempt]) -> None:
        """Record attempts (in one transaction)."""
        if not attempts:
            return
        await self.database.execute_many(
            f"INSERT INTO webhook_attempts ({_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    a.sub_id,
                    a.delivery_id,
                    a.attempt,
                    a.outcome,
                    a.status,
                    a.latency_ms,
                    a.error,
                    a.at_ms,
                )
                for a in attempts
            ],
        )

    async def attempts(
        self, sub_id: str, limit: int, delivery_id: str | None = None
    ) -> list[Attempt]:
        """The ``limit`` newest attempts of a subscription (of one delivery), newest first."""
        where, args = "sub_id = ?", [sub_id]
        if delivery_id is not None:
            where, args = where + " AND delivery_id = ?", [sub_id, delivery_id]
        rows = await self.database.fetch(
            f"SELECT {_ATTEMPT_COLUMNS} FROM webhook_attempts WHERE {where}"
            " ORDER BY at_ms DESC, attempt DESC LIMIT ?",
            (*args, limit),
        )
        return [_attempt(row) for row in rows]

    async def forget_attempts(self, before_ms: int) -> int:
        """Delete attempts older than ``before_ms`` (the log's retention)."""
        return await self.database.execute(
            "DELETE FROM webhook_attempts WHERE at_ms < ?", (before_ms,)
        )

    # dead letters -------------------------------------------------------------------------------

    async def add_dead_letter(self, letter: DeadLetter) -> None:
        """Keep a delivery that failed every attempt (again: it is dead again)."""
        d = letter
        await self.database.execute(
            f"INSERT INTO webhook_dead_letters ({_LETTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (sub_id, delivery_id) DO UPDATE SET attempts = excluded.attempts,"
            " error = excluded.error, at_ms = excluded.at_ms, state = excluded.state",
            (
                d.sub_id,
                d.delivery_id,
                d.payload.decode("utf-8"),
                d.attempts,
                d.error,
                d.at_ms,
                d.state,
            ),
        )

    async def dead_letters(
        self, sub_id: str, limit: int, state: LetterState | None = None
    ) -> list[DeadLetter]:
        """The ``limit`` newest dead letters of a subscription (in ``state``), newest first."""
        where, args = "sub_id = ?", [sub_id]
        if state is not None:
            where, args = where + " AND state = ?", [sub_id, state]
        rows = await self.database.fetch(
            f"SELECT {_LETTER_COLUMNS} FROM webhook_dead_letters WHERE {where}"
            " ORDER BY at_ms DESC, delivery_id LIMIT ?",
            (*args, limit),
        )
        return [_letter(row) for row in rows]

    async def queue_redelivery(self, sub_id: str, delivery_id: str) -> bool:
        """Ask the deliverer to send a dead letter again; False if no such dead letter."""
        changed = await self.database.execute(
            "UPDATE webhook_dead_letters SET state = 'queued'"
            " WHERE sub_id = ? AND delivery_id = ? AND state = 'dead'",
            (sub_id, delivery_id),
        )
        return changed > 0

    async def mark_letter(self, sub_id: str, delivery_id: str, state: LetterState) -> None:
        """Set a letter's state (``redelivered`` once a redelivery succeeded)."""
        await self.database.execute(
            "UPDATE webhook_dead_letters SET state = ? WHERE sub_id = ? AND delivery_id = ?",
            (state, sub_id, delivery_id),
        )

    async def count_dead(self, sub_id: str) -> int:
        """How many dead letters wait for a decision."""
        rows = await self.database.fetch(
            "SELECT COUNT(*) FROM webhook_dead_letters WHERE sub_id = ? AND state = 'dead'",
            (sub_id,),
        )
        return int(rows[0][0])


def webhook_store_for(config: Config) -> WebhookStore:
    """PostgreSQL next to a PostgreSQL document store (shared by the region's nodes); else a
    SQLite file in the data directory. Not opened."""
    from urllib.parse import urlsplit

    from breakwater.storage import POSTGRES_SCHEMES

    if urlsplit(config.store_url).scheme in POSTGRES_SCHEMES:
        from breakwater.server.webhooks._database import PostgresDatabase
        from breakwater.storage.postgres import PostgresSettings

        settings = PostgresSettings.from_url(config.store_url)
        return WebhookStore(
            PostgresDatabase(
                settings.dsn,
                settings.schema,
                pool_size=min(POOL_SIZE, settings.pool_size),
                timeout=settings.timeout,
            )
        )
    from breakwater.server.webhooks._database import SqliteDatabase

    return WebhookStore(SqliteDatabase(config.data / "webhooks.db"))
