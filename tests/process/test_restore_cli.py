"""``breakwater restore``: gives a store put back from a backup a new incarnation and prints the
origin its writes get now; refuses a store that is missing or cannot be opened (ADR 0018)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from breakwater.storage import open_store
from tests.storage.backends import drop_schema, engine, postgres_url

ORIGIN = re.compile(r"new writes get origin (local~[0-9a-f]{12})$")


def restore(*args: str) -> subprocess.CompletedProcess[str]:
    """``breakwater restore`` with ``args``, as an operator runs it."""
    command = [sys.executable, "-m", "breakwater", "restore", "--region", "local", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


async def origin_of(url: str) -> str:
    """The origin a node opening the store at ``url`` would write under."""
    store = open_store(url, engine("n1", "local"))
    await store.open()
    try:
        return store.origin
    finally:
        await store.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a store that exists (a node has opened it)."""
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp_path / 'breakwater.db'}"
        await origin_of(store_url)
        yield store_url
        return
    store_url, schema = postgres_url()
    await origin_of(store_url)
    yield store_url
    await drop_schema(schema)


async def test_restore_prints_the_new_origin_that_nodes_then_write_under(url: str) -> None:
    """Exit 0; the printed origin is new, and the one a node opening the store gets."""
    before = await origin_of(url)
    done = await asyncio.to_thread(restore, "--store", url)
    assert done.returncode == 0, done.stderr
    printed = ORIGIN.search(done.stdout.strip())
    assert printed is not None, done.stdout
    assert printed[1] != before
    assert await origin_of(url) == printed[1]


def test_a_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    """A data directory without a store (a wrong path) is named, and stays empty."""
    done = restore("--data", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"Error: no Breakwater store at {tmp_path / 'breakwater.db'}")
    assert list(tmp_path.iterdir()) == []


def test_a_store_that_cannot_be_opened_is_refused_without_its_password() -> None:
    """An unreachable PostgreSQL store: exit 1 and one ``Error:`` line, the password redacted."""
    done = restore("--store", "postgresql://bw:s3cret-pw@127.0.0.1:1/breakwater")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: cannot open PostgreSQL store"), done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr
