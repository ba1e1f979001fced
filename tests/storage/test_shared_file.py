"""Several writers of one SQLite file (the workers of a node): lock, migration, clock order."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage._sqlite_lock import WriterLock
from breakwater.storage.sqlite import SqliteStore


def test_a_writer_lock_excludes_another_on_the_same_file(tmp_path: Path) -> None:
    """The second lock waits until the first is released, then gets it at once."""
    first, second = WriterLock(str(tmp_path / "s.db")), WriterLock(str(tmp_path / "s.db"))
    acquired = threading.Event()

    def take_second() -> None:
        with second:
            acquired.set()

    try:
        with first:
            waiter = threading.Thread(target=take_second)
            waiter.start()
            assert not acquired.wait(0.3)
        assert acquired.wait(5)
        waiter.join()
    finally:
        first.close()
        second.close()


def test_stores_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    """Writers that start together on a fresh file (as workers do) all open it cleanly."""
    for attempt in range(8):
        path = tmp_path / f"fresh-{attempt}.db"
        errors: list[BaseException] = []
        start = threading.Barrier(3)

        def open_and_write(
            node: str,
            path: Path = path,
            start: threading.Barrier = start,
            errors: list[BaseException] = errors,
        ) -> None:
            async def run() -> None:
                store = SqliteStore(path, Engine("r1", HybridClock(node)))
                start.wait()
                await store.open()
                await store.apply([Mutation(f"m-{node}", "todos", node, "set", {"v": 1})])
                await store.aclose()

            try:
                asyncio.run(run())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_and_write, args=(f"n{i}",)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors


async def test_a_later_server_stamped_write_wins_over_a_writer_whose_clock_is_ahead(
    tmp_path: Path,
) -> None:
    """Writer A's clock runs 50 ms ahead of B's; B's later write still wins the document."""
    now = time.time_ns() // 1_000_000
    ahead = Engine("r1", HybridClock("a", physical_ms=lambda: now + 50))
    behind = Engine("r1", HybridClock("b", physical_ms=lambda: now))
    first, second = SqliteStore(tmp_path / "s.db", ahead), SqliteStore(tmp_path / "s.db", behind)
    await first.open()
    await second.open()
    try:
        await first.apply([Mutation("m1", "todos", "x", "set", {"v": "first"})])
        await second.apply([Mutation("m2", "todos", "x", "set", {"v": "second"})])
        doc = await second.get("todos", "x")
        assert doc is not None and doc.data == {"v": "second"}
        assert doc.hlc.endswith("-b") and doc.hlc > f"{now + 50:013d}"
    finally:
        await first.aclose()
        await second.aclose()
