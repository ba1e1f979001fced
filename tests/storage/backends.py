"""Store backends for tests: a URL per test (a SQLite file, or a PostgreSQL schema of its own)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import asyncpg

from breakwater.core.collections import CollectionConfig
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.storage import NO_HOOKS, StoreHooks
from breakwater.storage.base import Store
from breakwater.storage.postgres import PostgresStore
from breakwater.storage.sqlite import SqliteStore
from tests.services import POSTGRES_URL, require_service

BACKENDS = ("sqlite", "postgres")


def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file in the test's directory."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def postgres_url(base: str = POSTGRES_URL, **params: str) -> tuple[str, str]:
    """The shared test database with a schema nobody else uses; returns ``(url, schema)``."""
    require_service(base)
    schema = f"bw_test_{uuid.uuid4().hex[:12]}"
    query = "&".join(f"{key}={value}" for key, value in {"schema": schema, **params}.items())
    return f"{base}?{query}", schema


async def drop_schema(schema: str, base: str = POSTGRES_URL) -> None:
    """Remove a test's schema and everything in it."""
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def build_store(
    url: str,
    engine: Engine,
    hooks: StoreHooks = NO_HOOKS,
    clock_ms: Callable[[], int] | None = None,
) -> Store:
    """A store of the URL's backend (not yet opened)."""
    if url.startswith("sqlite:"):
        return SqliteStore(url.removeprefix("sqlite:///"), engine, hooks=hooks, clock_ms=clock_ms)
    return PostgresStore(url, engine, hooks=hooks, clock_ms=clock_ms)


def engine(
    node: str = "n1",
    region: str = "r1",
    collections: Mapping[str, CollectionConfig] | None = None,
    clock: HybridClock | None = None,
) -> Engine:
    """An engine of ``region`` with an HLC of node ``node``."""
    return Engine(region, clock or HybridClock(node), collections)


class CountingHooks:
    """Counts group commits and records feed notifications and availability."""

    def __init__(self) -> None:
        self.commits: list[int] = []
        self.retries = 0
        self.advanced: list[tuple[dict[str, int], int]] = []
        self.available: list[bool] = []

    def on_commit(self, mutations: int, seconds: float) -> None:
        self.commits.append(mutations)

    def on_conflict(self, collection: str) -> None:
        pass

    def on_commit_retried(self) -> None:
        self.retries += 1

    def on_feed_advanced(self, head: dict[str, int], at: float) -> None:
        self.advanced.append((head, threading.get_ident()))

    def on_available(self, available: bool) -> None:
        self.available.append(available)
