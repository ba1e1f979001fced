"""Realtime under load, against real ``breakwater serve`` processes: drain with many open
subscriptions, a slow consumer, and a reconnect storm."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from breakwater.bench.stats import percentile
from breakwater.core import cursor as cursor_mod
from tests.conftest import ServerProcess
from tests.realtime.clients import sse_events

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


async def ws_goodbye(url: str, ready: asyncio.Event, count: list[int], want: int) -> Any:
    """A WebSocket subscriber: subscribe, take one change, then record how it is closed."""
    async with connect(url, ping_interval=None) as ws:
        await ws.send('{"type":"subscribe","cursor":""}')
        last: dict[str, Any] = {}
        cursor = ""
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if message["type"] == "subscribed":
                    count[0] += 1
                    if count[0] == want:
                        ready.set()
                elif message["type"] == "changes":
                    cursor = message["cursor"]
                elif message["type"] == "ping":
                    await ws.send('{"type":"pong"}')
                last = message
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            return {"last": last, "cursor": cursor, "code": code}


async def sse_goodbye(base: str, ready: asyncio.Event, count: list[int], want: int) -> Any:
    """An SSE subscriber: record the last event before the stream ends."""
    last = None
    cursor = None
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        http.stream("GET", "/v1/realtime/sse") as response,
    ):
        count[0] += 1
        if count[0] == want:
            ready.set()
        async for event in sse_events(response):
            if event.comment is not None or event.retry is not None:
                continue
            if event.event == "changes":
                cursor = event.id
            last = event
    return {"last": last, "cursor": cursor}


async def test_sigterm_tells_100_subscribers_to_reconnect_before_closing(
    start_server: Callable[..., ServerProcess],
) -> None:
    """75 WebSocket and 25 SSE subscribers each get ``reconnect`` (draining) before the close."""
    server = start_server()
    ws_url = server.url.replace("http://", "ws://") + "/v1/realtime"
    ready = asyncio.Event()
    count = [0]
    clients = [asyncio.ensure_future(ws_goodbye(ws_url, ready, count, 100)) for _ in range(75)] + [
        asyncio.ensure_future(sse_goodbye(server.url, ready, count, 100)) for _ in range(25)
    ]
    await asyncio.wait_for(ready.wait(), 30)
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.put("/v1/collections/todos/docs/t1", json={"a": 1})
    await asyncio.sleep(1.0)  # every subscriber has the change
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    results = await asyncio.wait_for(asyncio.gather(*clients), 30)
    assert server.process.wait(timeout=20) == 0
    assert time.monotonic() - signalled < 10
    for result in results[:75]:
        assert result["last"] == {
            "type": "reconnect",
            "reason": "draining",
            "cursor": result["cursor"],
        }
        assert result["code"] == 1012
    for result in results[75:]:
        assert result["last"] is not None and result["last"].event == "reconnect"
        assert result["last"].json()["cursor"] == result["cursor"]
    assert all(r["cursor"] for r in results), "every subscriber had received the change"


SLOW_CHANGES = 50_000
DOC_BYTES = 2048


async def write_many(url: str, total: int, prefix: str, batch: int = 250, docs: int = 100) -> None:
    """``total`` sets of ~2 KB documents over ``docs`` ids, ``batch`` per push, 2 pushers."""
    filler = "x" * DOC_BYTES
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start in range(0, total, batch):
        queue.put_nowait(start)

    async def pusher() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while not queue.empty():
                start = queue.get_nowait()
                mutations = [
                    {
                        "mutation_id": f"{prefix}-{i}",
                        "collection": "bulk",
                        "id": f"d{i % docs}",
                        "op": "set",
                        "data": {"i": i, "body": filler},
                    }
                    for i in range(start, min(start + batch, total))
                ]
                response = await http.post("/v1/sync/push", json={"mutations": mutations})
                assert response.status_code == 200, response.text

    await asyncio.gather(pusher(), pusher())


async def test_a_slow_consumer_keeps_node_memory_bounded_and_catches_up(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A subscriber that stops reading while 50k changes (~100 MB of messages) are written:
    the node's RSS grows by far less than that, and the subscriber then gets every change."""
    config = tmp_path / "slow.toml"
    # The client stops reading for longer than the default timeout: keep it connected.
    config.write_text("realtime_timeout = 900.0\nrealtime_heartbeat = 5.0\n")
    server = start_server(None, "--config", str(config), "--log-level", "warning")
    pid = server.process.pid
    ws_url = server.url.replace("http://", "ws://") + "/v1/realtime"
    await write_many(server.url, 500, "warm")  # warm up: the same code paths and caches
    async with connect(ws_url, ping_interval=None, compression=None, max_queue=4) as ws:
        await ws.send('{"type":"subscribe","cursor":""}')
        received: list[int] = []
        cursor = ""
        while not received or received[-1] < 500:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["type"] == "changes":
                received += [c["seq"] for c in message["changes"]]
        await asyncio.sleep(1)
        baseline = rss_bytes(pid)
        # Stop reading: from here the node's writes to this socket block.
        peak = baseline
        writing = asyncio.ensure_future(write_many(server.url, SLOW_CHANGES, "slow"))
        while not writing.done():
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.2)
        await writing
        await asyncio.sleep(1)
        peak = max(peak, rss_bytes(pid))
        head = 500 + SLOW_CHANGES
        # Resume reading: the node catches the subscriber up through the feed.
        async with asyncio.timeout(240):
            while received[-1] < head:
                message = json.loads(await ws.recv())
                if message["type"] == "changes":
                    received += [c["seq"] for c in message["changes"]]
                    cursor = message["cursor"]
                elif message["type"] == "ping":
                    await ws.send('{"type":"pong"}')
                peak = max(peak, rss_bytes(pid))
        after = rss_bytes(pid)
    async with httpx.AsyncClient(base_url=server.url) as http:
        metrics = (await http.get("/metrics")).text
    growth = peak - baseline
    print(f"RSS baseline {baseline >> 20} MiB, peak {peak >> 20} MiB, after {after >> 20} MiB")
    assert received == list(range(1, head + 1)), "every change exactly once, in order"
    assert list(cursor_mod.decode(cursor).values()) == [head]  # of the node's one origin
    # An unbounded queue would hold ~50k messages of ~2.3 KB (>110 MiB) for this subscriber.
    # Bounded, the node holds at most realtime_queue = 1000 changes (~2.3 MiB) and one 256 KiB
    # message for it. The rest of the growth is the same without any subscriber (measured ~30
    # MiB on a 2-core test machine): the window of recent changes kept for resumes (at most
    # 16 MiB), SQLite's page caches over a ~20 MiB file, and allocator slack; round 2's node
    # (replication, webhooks, tracing wired in, all idle here) measured 59-62 MiB in all. The
    # bound sits between that and the >140 MiB an unbounded queue would add up to.
    assert growth < 75 * 1024 * 1024, f"RSS grew by {growth >> 20} MiB"
    assert "breakwater_realtime_overflows_total 0.0" not in metrics


STORM = 2000
HISTORY = 300


class HealthProbe(threading.Thread):
    """GETs /healthz every 20 ms on one keep-alive connection and keeps the latencies."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self.stop.wait(0.02):
                started = time.perf_counter()
                try:
                    ok = http.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.failures += not ok


async def small_writes(url: str, count: int, per_second: float, collection: str = "todos") -> None:
    """``count`` small documents, one per request, at about ``per_second``."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for i in range(count):
            response = await http.put(f"/v1/collections/{collection}/docs/s{i}", json={"i": i})
            assert response.status_code in (200, 201)
            if per_second:
                await asyncio.sleep(1 / per_second)


@pytest.mark.timeout(300)
async def test_a_reconnect_storm_is_paced_and_everyone_catches_up(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """2,000 subscribers reconnect within one second, from cursors spread over 300 changes,
    while writes go on: admission is paced, /healthz keeps answering (p99 far below a second),
    and every subscriber gets exactly the changes after its cursor."""
    import random

    config = tmp_path / "storm.toml"
    # Every subscriber comes from this one address: no per-address connection cap.
    config.write_text("max_connections_per_address = 0\n")
    server = start_server(None, "--config", str(config), "--log-level", "warning")
    await small_writes(server.url, HISTORY, 0, "history")
    async with httpx.AsyncClient(base_url=server.url) as http:
        [origin] = (await http.get("/v1/sync/pull", params={"limit": 1})).json()["stable"]
    rng = random.Random(2000)
    cursors = []
    for _ in range(STORM):
        after = rng.randint(0, HISTORY)
        cursors.append([after, cursor_mod.encode({origin: after} if after else {})])
    probe = HealthProbe(server.url)
    probe.start()
    await asyncio.sleep(0.5)
    before = len(probe.latencies)
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.process.storm_client",
        "--port",
        server.url.rsplit(":", 1)[1],
        "--spread",
        "1.0",
        "--seconds",
        "150",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert client.stdin is not None
    client.stdin.write(json.dumps(cursors).encode())
    client.stdin.close()
    try:
        await small_writes(server.url, 10, 2)  # writes go on during the storm
        await small_writes(server.url, 1, 0, "control")  # the marker every subscriber awaits
        output, _ = await asyncio.wait_for(client.communicate(), 200)
    finally:
        if client.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                client.kill()
        probe.stop.set()
        probe.join(10)
    report = json.loads(output)
    during = probe.latencies[before:]
    p99 = percentile(during, 0.99)
    admitted = sorted(report["admitted"])
    print(
        f"storm: {len(report['done'])} caught up in {report['seconds']:.1f} s,"
        f" {report['refused']} refusals, last admitted at {admitted[-1]:.2f} s;"
        f" /healthz p50 {percentile(during, 0.5) * 1000:.1f} ms"
        f" p99 {p99 * 1000:.1f} ms max {max(during) * 1000:.1f} ms over {len(during)} probes"
    )
    assert report["errors"] == []
    assert len(report["done"]) == STORM
    incomplete = [d for d in report["done"] if not d["complete"]]
    assert not incomplete, incomplete[:3]
    assert probe.failures == 0
    # A bound, not a measurement (the figure is printed above): unpaced, the storm held the
    # event loop for seconds; paced, /healthz answers in tens of milliseconds on a quiet
    # machine, and under a loaded CI machine's noise it must still be well below a second.
    assert p99 < 1.0, f"/healthz p99 {p99 * 1000:.1f} ms during the storm"
    # Paced: in no one-second window were more admitted than the rate plus the burst, give or
    # take half a second of the rate: the times are when the one client process, busy with
    # 2,000 sockets, saw each handshake end, so a slow loop step bunches them (323 in a second
    # on a loaded CI machine). The storm's 2,000 all try within its first second.
    rate, burst, seen_late = 200, 100, 0.5
    for index, start in enumerate(admitted):
        window = sum(1 for t in admitted[index:] if t < start + 1.0)
        assert window <= rate * (1 + seen_late) + burst, (
            f"{window} admitted within 1 s from {start:.2f} s"
        )
