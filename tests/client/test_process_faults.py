"""Process faults: the app SIGKILLed with a pending outbox, the node SIGKILLed mid-push, and a
100,000-document first sync killed mid-way and resumed."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client.conftest import feed, server_doc
from tests.client.cut_proxy import CutProxy
from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.slow


def app(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.client.app_process", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL the app and release its pipes."""
    process.kill()
    process.communicate(timeout=10)


def summary(process: subprocess.Popen[str], seconds: float) -> dict[str, Any]:
    out, err = process.communicate(timeout=seconds)
    assert process.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_app_killed_with_pending_outbox_delivers_everything_after_restart(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """Every write the app saw return before SIGKILL (server down) reaches the server later."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = str(tmp_path / "app.db")
    writer = app("write", url, db, "100000")
    assert writer.stdout is not None
    returned = -1
    for line in writer.stdout:
        returned = int(line.split()[1])
        if returned >= 150:
            break
    kill(writer)  # mid-way through its writes, nothing ever sent
    server = start_server(port=port)
    result = summary(app("sync", url, db), 120)
    assert result["todos"] >= returned + 1
    ids = Counter(change["mutation_id"] for change in feed(server.url))
    assert set(ids.values()) == {1}
    counter = server_doc(server.url, "todos", "counter")
    assert counter is not None and counter["data"]["n"] >= returned + 1
    # One increment follows each set, each counted once; the kill may land between the two.
    sets = result["todos"] - 1  # the counter document is in the collection too
    assert counter["data"]["n"] in (sets, sets - 1)


async def test_node_killed_after_commit_before_answer_applies_the_retry_once(
    tmp_path: Path, start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """The node commits a push and dies before answering; the SDK retries; nothing doubles."""
    node_port = free_port()
    data = tmp_path / "node-data"
    server = start_server(data, port=node_port)
    proxy = CutProxy(node_port, on_cut=lambda: server.kill())
    await proxy.start()
    try:
        # Realtime over SSE, so the push is the HTTP one the proxy cuts (the socket's push is
        # cut in tests/client/test_socket_push.py).
        phone = await make_device(
            f"http://127.0.0.1:{proxy.port}", push_batch=50, transports=("sse",)
        )
        likes = phone.collection("likes")
        for _ in range(40):
            await likes.increment("post1", {"n": 1})
        async with asyncio.timeout(20):
            await proxy.cut.wait()
        assert phone.pending == 40
        restarted = start_server(data, port=node_port)
        async with asyncio.timeout(30):
            await phone.wait_synced()
    finally:
        await proxy.aclose()
    assert server_doc(restarted.url, "likes", "post1")["data"] == {"n": 40}  # type: ignore[index]
    assert (await likes.get("post1")).data == {"n": 40}
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{restarted.url}/metrics")).text
    duplicates = re.search(r'breakwater_mutations_total\{status="duplicate"\} (\S+)', metrics)
    applied = re.search(r'breakwater_mutations_total\{status="applied"\} (\S+)', metrics)
    # The cut push was committed: its retry is all duplicates; the rest applied now, once.
    assert duplicates is not None and float(duplicates[1]) >= 1
    assert applied is not None and float(duplicates[1]) + float(applied[1]) == 40
    ids = Counter(change["mutation_id"] for change in feed(restarted.url))
    assert len(ids) == 40 and set(ids.values()) == {1}


def test_first_sync_of_100k_documents_resumes_after_the_app_is_killed(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """100,000 documents stream in pages with progress; a kill mid-way does not restart it."""
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for batch in range(200):
            mutations = [
                {
                    "mutation_id": f"seed.{batch}.{i}",
                    "collection": "items",
                    "id": f"i{batch * 500 + i}",
                    "op": "set",
                    "data": {"n": batch * 500 + i, "title": "an item"},
                }
                for i in range(500)
            ]
            http.post("/v1/sync/push", json={"mutations": mutations}).raise_for_status()
    db = str(tmp_path / "app.db")
    first = app("sync", server.url, db)
    assert first.stdout is not None
    reached = 0
    for line in first.stdout:
        if line.startswith("progress"):
            reached = int(line.split()[1])
            if reached >= 30_000:
                break
    kill(first)
    assert reached >= 30_000
    result = summary(app("sync", server.url, db), 300)
    assert result["items"] == 100_000
    [resumed_at] = result["start"].values()  # the node's one origin
    assert resumed_at >= 30_000  # resumed from the stored cursor
    assert result["pulled"] <= 100_000 - resumed_at
