"""StoreOpener: a network store that is down at start is opened later; anything else fails."""

from __future__ import annotations

import asyncio

import pytest

from breakwater.core.errors import ConfigError, StoreIncompatible, StoreUnavailable
from breakwater.resilience import Backoff
from breakwater.server.store_opener import StoreOpener
from breakwater.storage.base import Store


class FlakyStore:
    """A store whose first ``failures`` opens raise ``error``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or StoreUnavailable("PostgreSQL is unreachable")
        self.opens = 0

    async def open(self) -> None:
        self.opens += 1
        if self.opens <= self.failures:
            raise self.error


def opener(store: FlakyStore, *, wait: bool) -> tuple[StoreOpener, list[bool], asyncio.Event]:
    """An opener with no backoff delay; the health reports it made; an event set on open."""
    health: list[bool] = []
    opened = asyncio.Event()

    async def on_open() -> None:
        opened.set()

    instant = Backoff(base=0.001, cap=0.001, random=lambda: 0.0)
    fake: Store = store  # type: ignore[assignment]  # only open() is used
    return StoreOpener(fake, on_open, health.append, wait=wait, backoff=instant), health, opened


async def test_an_unavailable_store_is_opened_in_the_background_once_it_answers() -> None:
    """Three failed opens, then success: start returns at once, health goes 0 then 1."""
    store = FlakyStore(failures=3)
    subject, health, opened = opener(store, wait=True)
    await subject.open()
    assert not subject.opened and subject.problem == "not open: PostgreSQL is unreachable"
    await asyncio.wait_for(opened.wait(), 5)
    assert subject.opened and subject.problem == "" and store.opens == 4
    assert health == [False, False, False, True]
    await subject.aclose()


async def test_without_waiting_an_unavailable_store_fails_the_start() -> None:
    """A SQLite file that cannot be opened stops the node, as before."""
    subject, health, opened = opener(FlakyStore(failures=1), wait=False)
    with pytest.raises(StoreUnavailable):
        await subject.open()
    assert not opened.is_set() and health == []


async def test_an_error_other_than_unavailability_fails_the_start_even_when_waiting() -> None:
    """A node id held by another live process is a configuration error, not an outage."""
    subject, _, _ = opener(FlakyStore(1, ConfigError("node id 'a' is already serving")), wait=True)
    with pytest.raises(ConfigError):
        await subject.open()


async def test_a_schema_from_a_newer_breakwater_fails_the_start_even_when_waiting() -> None:
    """Waiting cannot fix an incompatible schema: the operator sees it at once."""
    newer = StoreIncompatible("the database schema 'breakwater' is at version 9")
    subject, health, _ = opener(FlakyStore(1, newer), wait=True)
    with pytest.raises(StoreIncompatible):
        await subject.open()
    assert health == []


async def test_closing_stops_the_retries() -> None:
    """A node stopped before its store ever opened stops trying."""
    store = FlakyStore(failures=10**9)
    subject, _, opened = opener(store, wait=True)
    await subject.open()
    await subject.aclose()
    tries = store.opens
    await asyncio.sleep(0.05)
    assert store.opens == tries and not opened.is_set()
