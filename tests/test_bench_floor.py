"""bench floor: every server of the ladder answers the same write, and the durable ones
commit it to SQLite before they answer (the floor must do the work it stands for)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from breakwater.bench import http_floor
from breakwater.bench._http import HttpConnection

pytestmark = pytest.mark.slow


async def _write_twice(
    kind: str, data: Path, body: http_floor.Body = "small"
) -> list[tuple[int, bytes]]:
    served = http_floor._Served(kind, data)
    try:
        await served.wait_ready()
        async with HttpConnection("127.0.0.1", served.port) as conn:
            return [
                await conn.request("POST", "/v1/sync/push", http_floor.body("t", index, body))
                for index in (1, 2)
            ]
    finally:
        served.stop()


@pytest.mark.parametrize("kind", ["asgi", "node_http", "protocol", "commit", "group_commit"])
def test_each_floor_server_answers_the_write(kind: str, tmp_path: Path) -> None:
    """Each floor server answers a push-shaped body with the same small JSON, keep-alive."""
    answers = asyncio.run(_write_twice(kind, tmp_path))
    assert answers == [(200, http_floor.ANSWER)] * 2


@pytest.mark.parametrize("kind", ["commit", "group_commit"])
def test_durable_floor_servers_commit_each_body_before_answering(kind: str, tmp_path: Path) -> None:
    """The commit floors hold every answered body in a WAL, synchronous=FULL SQLite file."""
    asyncio.run(_write_twice(kind, tmp_path))
    with sqlite3.connect(tmp_path / "floor.db") as conn:
        bodies = [row[0] for row in conn.execute("SELECT body FROM rows ORDER BY id")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    # The readiness probe's body first, then the two writes.
    assert bodies[-2:] == [http_floor.body("t", 1), http_floor.body("t", 2)]
    assert mode == "wal"


def test_the_peers_body_is_loadgens_one_mutation_push() -> None:
    """``--body peers`` sends what the peers' loadgen.py pushes: one new 1 KB document with a
    float time stamp, written by ``json.dumps`` (a blank after each "," and ":")."""
    sent = http_floor.body("t", 7, "peers")
    push = json.loads(sent)
    (mutation,) = push["mutations"]
    assert push["client_id"] == "loadgen" and b'", "' in sent and b'": ' in sent
    assert mutation["op"] == "set" and mutation["collection"] == "single"
    assert len(mutation["id"]) == len(mutation["mutation_id"]) == 32
    assert mutation["id"] != json.loads(http_floor.body("t", 8, "peers"))["mutations"][0]["id"]
    assert isinstance(mutation["data"]["ts"], float)
    assert len(json.dumps(mutation["data"])) == 1023  # loadgen's --doc-size 1024, its way


@pytest.mark.parametrize("body", http_floor.BODIES)
def test_the_node_takes_the_floor_body_as_a_one_mutation_push(
    tmp_path: Path, body: http_floor.Body
) -> None:
    """The node's figure is for the same body, applied as a new document each time."""
    answers = asyncio.run(_write_twice("node", tmp_path, body))
    assert [status for status, _ in answers] == [200, 200]
    assert all(b'"status":"applied"' in body for _, body in answers)


def test_bench_floor_reports_every_server_of_the_ladder(tmp_path: Path) -> None:
    """`breakwater bench floor` measures each server once per round, with no failed request."""
    out = tmp_path / "floor.json"
    command = ["bench", "floor", "--runs", "1", "--seconds", "0.5", "--json", str(out)]
    subprocess.run(
        [sys.executable, "-m", "breakwater", *command],
        check=True,
        capture_output=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    assert [row["kind"] for row in report["results"]] == list(http_floor.KINDS)
    for row in report["results"]:
        assert row["requests_per_s"] > 0 and row["server_cpu_us"] > 0
        assert row["errors"] == 0 and len(row["runs"]) == 1


def test_bench_floor_measures_one_rung_with_the_peers_body(tmp_path: Path) -> None:
    """`--server node --body peers` measures the node alone, with the 1 KB push, and says so."""
    out = tmp_path / "floor.json"
    command = ["bench", "floor", "--runs", "1", "--seconds", "0.5", "--json", str(out)]
    subprocess.run(
        [sys.executable, "-m", "breakwater", *command, "--server", "node", "--body", "peers"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    assert report["body"] == "peers"
    assert [row["kind"] for row in report["results"]] == ["node"]
    assert report["results"][0]["errors"] == 0
