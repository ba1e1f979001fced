"""The regions of one test, in process, all stopped at its teardown."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.replication.harness import Cluster


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Regions of one test; all stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:
        yield Cluster(tmp_path, stack)
