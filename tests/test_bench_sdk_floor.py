"""The SDK's CPU floor does the work it stands for: the peer answers each push as a node does
(two messages), the durable transaction commits the outbox row, and the peer process ends;
the device and its floor are measured in a process of their own."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from breakwater.bench import _sdk_device, _ws_echo, sdk_floor
from breakwater.client import local_store

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("compression", ["deflate", None])
def test_the_peer_answers_a_push_with_pushed_and_its_echo(compression: str | None) -> None:
    """Each message gets the node's two for a push, numbered by its count, in both modes."""

    async def exchange_twice() -> list[dict[str, object]]:
        async with sdk_floor.echo_socket(compression) as ws:
            received = []
            for n in (1, 2):
                await ws.send(sdk_floor.push_text(n))
                received += [json.loads(await ws.recv()), json.loads(await ws.recv())]
            return received

    pushed1, echo1, pushed2, echo2 = asyncio.run(exchange_twice())
    assert (pushed1["type"], pushed1["id"], echo1["type"]) == ("pushed", 1, "changes")
    assert (pushed2["id"], echo2["changes"][0]["seq"]) == (2, 2)  # type: ignore[index]


def test_the_push_message_is_json_and_the_size_of_the_sdks() -> None:
    """The floor sends a push as the SDK encodes one (one mutation, about 250 B)."""
    message = json.loads(sdk_floor.push_text(7))
    assert message["type"] == "push" and message["id"] == 7
    assert message["mutations"][0]["data"]["tags"] == ["home", "errand"]
    assert 200 < len(sdk_floor.push_text(7)) < 300
    assert json.loads(_ws_echo.answers(7)[1])["changes"][0]["id"] == "t7"


def test_the_durable_transaction_commits_with_the_stores_pragmas(tmp_path: Path) -> None:
    """The floor's transaction is WAL with ``synchronous=FULL`` and leaves its row stored;
    the acknowledgement's record runs ``NORMAL`` and goes back to ``FULL``."""
    conn = local_store.connect(tmp_path / "f.db")
    position = sdk_floor.durable_insert(conn, 1)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)
    sdk_floor.acknowledge(conn, position, 5)
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)
    conn.close()
    with sqlite3.connect(tmp_path / "f.db") as other:
        assert other.execute("SELECT id, seq FROM outbox").fetchall() == [("t1", 5)]


def test_measure_reports_every_floor_per_run(tmp_path: Path) -> None:
    """Every figure is there and positive; a write costs more than its exchange alone."""
    report = asyncio.run(sdk_floor.measure(tmp_path, 5, 0.0))
    assert set(report) == {
        "idle_ms",
        "transaction_ms",
        "exchange_ms",
        "write_ms",
        "exchange_b2b_ms",
        "write_b2b_ms",
        "exchange_plain_ms",
        "exchange_plain_b2b_ms",
    }
    assert all(value >= 0 for value in report.values())
    assert report["write_b2b_ms"] > report["exchange_b2b_ms"] > 0


def test_the_device_is_measured_in_a_process_of_its_own(tmp_path: Path) -> None:
    """The device's and the floor's CPU leave out what the bench's own process does meanwhile
    (a thread busy for the whole measurement would add about a pause per idle slot)."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))

    burner = threading.Thread(target=busy)
    burner.start()
    try:
        report = asyncio.run(_sdk_device.in_child(tmp_path, 5, 0.05, "warning"))
    finally:
        stop.set()
        burner.join()
    assert report["write_requests"] == 0 and report["write_cpu_ms"] > 0
    assert 0 < report["floor_idle_ms"] < 10  # in this process: about 50 ms per slot
    assert report["floor_write_ms"] > 0
