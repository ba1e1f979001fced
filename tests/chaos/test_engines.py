"""Private engines: a PostgreSQL cluster and a Redis server for one run, stopped and restarted."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
import pytest

from breakwater.chaos.engines import PostgresEngine, RedisEngine
from tests.chaos.engines import require_engines
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    """Whether a process with this PID runs (a zombie awaiting its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def rows(url: str) -> list[int]:
    """The values in table ``t`` (created if missing)."""
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS t (v int)")
        return [row["v"] for row in await connection.fetch("SELECT v FROM t ORDER BY v")]
    finally:
        await connection.close()


async def insert(url: str, value: int) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute("INSERT INTO t VALUES ($1)", value)
    finally:
        await connection.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_survives_a_stop_and_is_removed_at_the_end(
    tmp_path: Path, mode: str
) -> None:
    """A committed row survives a clean stop or a crash on the same port; at the end the
    postmaster is gone, the temporary directory removed and the server's log kept."""
    require_engines("postgres")
    engine = PostgresEngine(free_port(), tmp_path / "postgres.log")
    try:
        await engine.start()
        assert await rows(engine.url) == []
        await insert(engine.url, 7)
        await engine.stop(mode)  # type: ignore[arg-type]
        assert not engine.running
        with pytest.raises((OSError, asyncpg.PostgresError)):
            await rows(engine.url)
        await engine.start()
        assert await rows(engine.url) == [7]
        pid, root = engine._pid, engine._root
    finally:
        await engine.aclose()
    assert pid is not None and root is not None
    assert not alive(pid)
    assert not root.exists()
    assert "database system is ready" in (tmp_path / "postgres.log").read_text()


async def test_redis_stops_by_pid_and_starts_empty(tmp_path: Path) -> None:
    """Stopped, the port refuses connections; started again, it answers on the same port."""
    require_engines("redis")
    engine = RedisEngine(free_port(), tmp_path / "redis.log")
    try:
        await engine.start()
        assert engine._pong()
        await engine.stop("immediate")
        assert not engine.running
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", engine.port), timeout=1).close()
        await engine.start()
        assert engine._pong()
        root = engine._root
    finally:
        await engine.aclose()
    assert root is not None and not root.exists()
    assert not engine.running
