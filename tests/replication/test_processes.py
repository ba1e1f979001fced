"""Replication between real ``breakwater serve`` processes: one replicator per peer per region
(a SIGKILLed lease holder is replaced by the region's other node within seconds), and
``breakwater region promote`` on a standby's store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from breakwater.core import codec
from tests.conftest import ServerProcess

pytestmark = pytest.mark.timeout(120)


def cli(*args: str) -> str:
    """Run ``breakwater ARGS`` and return its output (failing the test on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "breakwater", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def replication_key(data: Path) -> str:
    """A key with the replication scope issued by the region whose data directory is ``data``."""
    return cli("keys", "create", "peer", "--scope", "replication", "--data", str(data)).split()[-1]


def lease_holder(db: Path, peer: str) -> str:
    """The holder of the region's lease for ``peer``, read from its SQLite store."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM replication WHERE key = ?", (f"lease:{peer}",))
        found = row.fetchone()
    return "" if found is None else str(codec.loads(found[0])["holder"])


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll ``check`` until it holds; the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{what} did not hold within {seconds}s")
        time.sleep(0.1)
    return time.monotonic() - start


def has_doc(server: ServerProcess, doc_id: str) -> bool:
    """True when ``server`` serves document ``todos/doc_id``."""
    try:
        answer = httpx.get(f"{server.url}/v1/collections/todos/docs/{doc_id}", timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def push(server: ServerProcess, mid: str, doc_id: str) -> None:
    """Write one document through ``server``."""
    body = {"mutations": [{"mutation_id": mid, "collection": "todos", "id": doc_id,
                           "op": "set", "data": {"v": mid}}]}  # fmt: skip
    assert httpx.post(f"{server.url}/v1/sync/push", json=body, timeout=5).status_code == 200


def test_a_killed_lease_holder_is_replaced_by_the_regions_other_node(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """Region b has two nodes over one store; exactly one pulls from a. SIGKILL it: the other
    takes the lease after it runs out (2 s here) and replication goes on."""
    a_data, b_data = tmp_path / "a", tmp_path / "b"
    a_data.mkdir()
    key = replication_key(a_data)
    a = start_server(a_data, "--region", "a")
    config = tmp_path / "b.toml"
    config.write_text(
        'region = "b"\n[topology]\nlease_ttl = 2.0\npull_wait = 1.0\n'
        f'[topology.peers.a]\nurls = ["{a.url}"]\nkey = "{key}"\n'
    )
    b1 = start_server(b_data, "--config", str(config), "--node", "b1")
    b2 = start_server(b_data, "--config", str(config), "--node", "b2")
    push(a, "m1", "d1")
    wait_for(lambda: has_doc(b1, "d1") and has_doc(b2, "d1"), 20, "replication into b")
    db = b_data / "breakwater.db"
    holder = lease_holder(db, "a")
    assert holder.startswith(("b1-", "b2-"))
    killed, survivor, survivor_id = (b1, b2, "b2-") if holder.startswith("b1-") else (b2, b1, "b1-")
    killed.kill()
    push(a, "m2", "d2")
    took = wait_for(lambda: has_doc(survivor, "d2"), 20, "replication after the kill")
    assert lease_holder(db, "a").startswith(survivor_id)
    assert took < 10


def test_region_promote_turns_a_standby_active_for_good(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """The CLI promotes on the store; a node started with ``state = "standby"`` in its config
    is active afterwards, and writes are taken."""
    data = tmp_path / "s"
    config = tmp_path / "s.toml"
    config.write_text(
        'region = "s"\n[topology]\nstate = "standby"\n'
        '[topology.peers.a]\nurls = ["http://127.0.0.1:9"]\n'
    )
    standby = start_server(data, "--config", str(config))
    body = {"mutations": [{"mutation_id": "m1", "collection": "todos", "id": "d",
                           "op": "set", "data": {}}]}  # fmt: skip
    refused = httpx.post(f"{standby.url}/v1/sync/push", json=body, timeout=5)
    assert (refused.status_code, refused.json()["type"]) == (503, "region_standby")
    assert cli("region", "status", "--data", str(data), "--config", str(config)).strip() == (
        "region s: standby"
    )
    assert "standby -> active" in cli("region", "promote", "--data", str(data), "--config",
                                       str(config))  # fmt: skip
    wait_for(
        lambda: httpx.post(f"{standby.url}/v1/sync/push", json=body, timeout=5).status_code == 200,
        5,
        "the running node turns active",
    )
    assert standby.terminate() == 0
    restarted = start_server(data, "--config", str(config))
    body["mutations"][0]["mutation_id"] = "m2"
    assert httpx.post(f"{restarted.url}/v1/sync/push", json=body, timeout=5).status_code == 200
