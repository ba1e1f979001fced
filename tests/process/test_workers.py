"""``serve --workers 2``: one node in two processes over one store and one port.

Writes through either worker are durable (I1) and the feed stays gap-free and exactly-once (I3);
a commit in one worker wakes long-polls in the other at once (the ipc bus, not the one-second
fallback poll); /metrics answers for both; a crashed worker is replaced; SIGTERM drains both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.process.test_durability import counters, push_until_killed
from tests.process.test_multinode import changes, subscribe
from tests.services import NATS_URL, REDIS_URL, require_service

pytestmark = pytest.mark.slow


def worker_pids(supervisor: int) -> set[int]:
    """The PIDs of the supervisor's workers (not multiprocessing's resource tracker)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == supervisor and b"spawn_main" in command:
            children.add(int(stat.parent.name))
    return children


async def client_of_each_worker(url: str) -> dict[str, httpx.AsyncClient]:
    """One single-connection client per worker, found by the node id /readyz reports."""
    found: dict[str, httpx.AsyncClient] = {}
    spare: list[httpx.AsyncClient] = []
    for _ in range(60):
        http = httpx.AsyncClient(base_url=url, timeout=15, limits=httpx.Limits(max_connections=1))
        node = (await http.get("/readyz")).json()["node"]
        if node in found:
            spare.append(http)
        else:
            found[node] = http
        if len(found) == 2:
            break
    for http in spare:
        await http.aclose()
    assert len(found) == 2, f"connections reached only {sorted(found)}"
    return found


def wait_until_both_workers_serve(url: str) -> None:
    """Open new connections until each worker has answered /readyz once."""
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 2 and time.monotonic() < deadline:
        with httpx.Client(base_url=url, timeout=10) as http:
            response = http.get("/readyz")
            if response.status_code == 200:
                seen.add(response.json()["node"])
    assert len(seen) == 2, f"only {sorted(seen)} answered"


async def feed(url: str) -> list[dict[str, object]]:
    """Every change of the feed, from the empty cursor to the end."""
    changes: list[dict[str, object]] = []
    cursor = ""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while True:
            page = (
                await http.get("/v1/sync/pull", params={"cursor": cursor, "limit": 1000})
            ).json()
            changes += page["changes"]
            cursor = page["cursor"]
            if not page["has_more"]:
                return changes


async def test_writes_through_both_workers_are_durable_and_the_feed_gap_free(
    start_server: Callable[..., ServerProcess],
) -> None:
    """I1 and I3 across workers: SIGKILL mid-load, restart, every ack present once, no gaps."""
    server = start_server(None, "--workers", "2")
    acked: list[str] = []
    enough = asyncio.Event()
    pushers = [
        asyncio.ensure_future(push_until_killed(server.url, acked, enough)) for _ in range(16)
    ]
    await asyncio.wait_for(enough.wait(), 90)
    killer = threading.Thread(target=server.kill)  # the workers die with their supervisor
    killer.start()
    await asyncio.gather(*pushers)
    killer.join()
    restarted = start_server(None, "--workers", "2", port=int(server.url.rsplit(":", 1)[1]))
    changes = await feed(restarted.url)
    ids = [str(change["mutation_id"]) for change in changes]
    assert len(ids) == len(set(ids)), "a mutation appears twice in the feed"
    lost = set(acked) - set(ids)
    assert not lost, f"{len(lost)} acknowledged mutations lost"
    seqs = [change["seq"] for change in changes]
    assert seqs == list(range(1, len(seqs) + 1)), "the feed has a gap or is out of order"
    assert await counters(restarted.url) == len(ids)
    stamps = {str(change["hlc"]).rsplit("-", 1)[1] for change in changes}
    assert len(stamps) == 2 and all(stamp.endswith((".w0", ".w1")) for stamp in stamps)


@pytest.mark.parametrize("bus", ["ipc", "redis", "nats"])
async def test_a_commit_in_one_worker_wakes_a_long_poll_in_the_other(
    start_server: Callable[..., ServerProcess], bus: str
) -> None:
    """Long-polls answer well within the one-second fallback poll: the bus carried it (the
    workers' own ipc bus by default, or the configured Redis or NATS bus every worker connects
    to)."""
    args = ["--workers", "2"]
    if bus != "ipc":
        prefix = f"bw-test-{uuid.uuid4().hex[:8]}"
        broker = REDIS_URL if bus == "redis" else NATS_URL
        args += ["--bus", f"{require_service(broker)}?prefix={prefix}"]
    server = start_server(None, *args)
    clients = await client_of_each_worker(server.url)
    waiter, writer = clients.values()
    try:
        cursor = (await waiter.get("/v1/sync/pull")).json()["cursor"]
        delays = []
        for index in range(5):
            poll = asyncio.ensure_future(
                waiter.get("/v1/sync/pull", params={"cursor": cursor, "wait": 10})
            )
            await asyncio.sleep(0.3)  # the long-poll is waiting in the other worker
            assert not poll.done()
            written = time.monotonic()
            response = await writer.put(f"/v1/collections/todos/docs/d{index}", json={"i": index})
            assert response.status_code == 201
            page = (await poll).json()
            delays.append(time.monotonic() - written)
            assert [change["id"] for change in page["changes"]] == [f"d{index}"]
            cursor = page["cursor"]
        assert statistics.median(delays) < 0.5, f"woken by the fallback poll only: {delays}"
    finally:
        for http in clients.values():
            await http.aclose()


async def test_a_realtime_subscriber_gets_both_workers_writes_once_in_order(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A WebSocket subscriber gets every write made through either worker once, in seq order
    with no gap, those made before it subscribed (while no worker read the feed) included
    (a commit in one worker wakes the other's follower: the long-poll test shows it)."""
    server = start_server(None, "--workers", "2")
    clients = await client_of_each_worker(server.url)
    writers = list(clients.values())
    ws = None
    try:
        for index in range(4):  # nobody subscribed: the followers move on unread
            await writers[index % 2].put(f"/v1/collections/todos/docs/d{index}", json={})
        ws = await subscribe(server)
        seqs = [change["seq"] for change in await changes(ws, 10)]
        for index in range(4, 14):  # alternately: half of them from the other worker
            response = await writers[index % 2].put(f"/v1/collections/todos/docs/d{index}", json={})
            assert response.status_code == 201
            while len(seqs) <= index:
                seqs += [change["seq"] for change in await changes(ws, 10)]
        assert seqs == list(range(1, 15))
    finally:
        if ws is not None:
            await ws.close()
        for http in writers:
            await http.aclose()


async def test_metrics_answer_for_every_worker(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Requests served by either worker are counted in /metrics, labelled by worker."""
    server = start_server(None, "--workers", "2")
    clients = await client_of_each_worker(server.url)
    try:
        for http in clients.values():
            for _ in range(3):
                assert (
                    await http.put(f"/v1/collections/m/docs/{uuid.uuid4().hex}", json={})
                ).is_success
        await asyncio.sleep(1.5)  # each worker publishes its figures every second
        text = (await next(iter(clients.values())).get("/metrics")).text
    finally:
        for http in clients.values():
            await http.aclose()
    puts = {
        line.split('worker="')[1][0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("breakwater_http_requests_total{") and 'method="PUT"' in line
    }
    assert puts == {"0": 3.0, "1": 3.0}


def test_a_killed_worker_is_replaced(start_server: Callable[..., ServerProcess]) -> None:
    """SIGKILL one worker: the supervisor starts another, and the node keeps answering."""
    server = start_server(None, "--workers", "2")
    before = worker_pids(server.process.pid)
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    after = before
    while time.monotonic() < deadline:
        after = worker_pids(server.process.pid)
        if len(after) == 2 and victim not in after:
            break
        time.sleep(0.1)
    assert len(after) == 2 and victim not in after
    for _ in range(10):
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert "worker_restarted" in server.log.read_text()


def test_sigterm_drains_every_worker_and_exits_cleanly(
    start_server: Callable[..., ServerProcess],
) -> None:
    """One SIGTERM to the supervisor stops both workers through their drain; exit status 0."""
    server = start_server(None, "--workers", "2")
    workers = worker_pids(server.process.pid)
    wait_until_both_workers_serve(server.url)
    assert server.terminate() == 0
    log = server.log.read_text()
    assert log.count('"event":"node_stopped"') == 2
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_sigterm_while_workers_are_still_starting_is_a_clean_stop(tmp_path: Path) -> None:
    """A signal that reaches workers before they serve still ends the node with status 0."""
    log = tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "breakwater", "serve", "--workers", "2", "--port", "0",
        "--data", str(tmp_path / "data"), "--drain-grace", "0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while "workers_started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
