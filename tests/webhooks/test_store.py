"""The webhook store's contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from breakwater.server.webhooks._database import PostgresDatabase, SqliteDatabase
from breakwater.server.webhooks.records import Attempt, DeadLetter, Subscription
from breakwater.server.webhooks.store import WebhookStore
from tests.services import POSTGRES_URL
from tests.storage.backends import drop_schema, postgres_url

Reopen = Callable[[], Awaitable[WebhookStore]]
SUB = Subscription("wh_1", "http://127.0.0.1:9/h", ("notes",), ("set", "delete"), "s3cret", 1)


@pytest.fixture(params=["sqlite", "postgres"])
async def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Reopen]:
    """A factory of stores over one database (a new one per call: a restart)."""
    schema = None
    if request.param == "postgres":
        _, schema = postgres_url()
    opened: list[WebhookStore] = []

    async def make() -> WebhookStore:
        if schema is None:
            store = WebhookStore(SqliteDatabase(tmp_path / "webhooks.db"))
        else:
            store = WebhookStore(PostgresDatabase(POSTGRES_URL, schema, pool_size=2, timeout=5))
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.aclose()
    if schema is not None:
        await drop_schema(schema)


async def test_subscriptions_are_added_updated_listed_and_removed(reopen: Reopen) -> None:
    """A subscription reads back as stored, changes, and is gone with its logs once removed."""
    store = await reopen()
    await store.add(SUB, None)
    assert await store.subscriptions() == [SUB]
    changed = Subscription("wh_1", "http://h/2", (), ("patch",), "s3cret", 1, "new")
    assert await store.update(changed)
    assert await store.subscription("wh_1") == changed
    await store.log([Attempt("wh_1", "d1", 1, "failed", 500, 3.5, "HTTP 500", 10)])
    await store.add_dead_letter(DeadLetter("wh_1", "d1", b"{}", 3, "HTTP 500", 10))
    assert await store.remove("wh_1")
    assert not await store.remove("wh_1")
    assert not await store.update(changed)
    assert await store.subscriptions() == []
    assert await store.attempts("wh_1", 10) == []
    assert await store.dead_letters("wh_1", 10) == []


async def test_a_saved_cursor_survives_a_restart(reopen: Reopen) -> None:
    """The cursor a deliverer saved is where a new store over the same database resumes."""
    store = await reopen()
    await store.add(SUB, {"r~a": 3})
    assert await store.cursor("wh_1") == {"r~a": 3}
    await store.save_cursor("wh_1", {"r~a": 7, "r~b": 1})
    await store.aclose()
    assert await (await reopen()).cursor("wh_1") == {"r~a": 7, "r~b": 1}


async def test_the_delivery_log_is_newest_first_and_filters_by_delivery(reopen: Reopen) -> None:
    """Attempts come back newest first; a delivery id narrows them; old ones are forgotten."""
    store = await reopen()
    await store.add(SUB, None)
    await store.log(
        [
            Attempt("wh_1", key, attempt, "failed", None, 1.0, "timeout", 100 + at)
            for at, (key, attempt) in enumerate([("d1", 1), ("d2", 1), ("d1", 2)])
        ]
    )
    assert [(a.delivery_id, a.attempt) for a in await store.attempts("wh_1", 10)] == [
        ("d1", 2),
        ("d2", 1),
        ("d1", 1),
    ]
    assert [a.attempt for a in await store.attempts("wh_1", 10, "d1")] == [2, 1]
    assert await store.forget_attempts(101) == 1
    assert len(await store.attempts("wh_1", 10)) == 2


async def test_a_dead_letter_is_queued_once_and_marked(reopen: Reopen) -> None:
    """Redelivery queues a dead letter once; only dead letters can be queued."""
    store = await reopen()
    await store.add(SUB, None)
    letter = DeadLetter("wh_1", "d1", b'{"a":1}', 3, "HTTP 500", 10)
    await store.add_dead_letter(letter)
    await store.add_dead_letter(letter)  # idempotent
    assert await store.count_dead("wh_1") == 1
    assert await store.queue_redelivery("wh_1", "d1")
    assert not await store.queue_redelivery("wh_1", "d1")
    assert not await store.queue_redelivery("wh_1", "nope")
    [queued] = await store.dead_letters("wh_1", 10, state="queued")
    assert queued.payload == b'{"a":1}'
    await store.mark_letter("wh_1", "d1", "redelivered")
    assert await store.count_dead("wh_1") == 0
    assert [d.state for d in await store.dead_letters("wh_1", 10)] == ["redelivered"]
