"""Live ``changes`` written straight to an idle, uncompressed WebSocket (no task wake-up).

The fast path must be invisible to clients: the same frames, in the same order, each change
once, interleaved correctly with control messages; compressed connections never take it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from breakwater.server.realtime import websocket
from breakwater.server.realtime.fanout import Batch
from tests.realtime.clients import recv, subscribe
from tests.realtime.conftest import LiveNode


@pytest.fixture
def direct_writes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record the outcome of every direct write attempt."""
    outcomes: list[bool] = []
    original = websocket._DirectSocket.write

    def counting(self: Any, batch: Batch) -> bool:
        written = original(self, batch)
        outcomes.append(written)
        return written

    monkeypatch.setattr(websocket._DirectSocket, "write", counting)
    return outcomes


async def write_one_at_a_time(url: str, count: int) -> None:
    """``count`` documents, each in its own commit (so each is its own live page)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for i in range(count):
            response = await http.put(f"/v1/collections/todos/docs/d{i}", json={"i": i})
            assert response.status_code == 201


async def test_idle_uncompressed_subscribers_get_live_changes_directly(
    live: LiveNode, direct_writes: list[bool]
) -> None:
    """Every change arrives once and in order, most of them through the direct path."""
    async with connect(f"{live.ws_url}/v1/realtime", compression=None) as ws:
        await subscribe(ws, ["todos"])
        await write_one_at_a_time(live.url, 30)
        seqs: list[int] = []
        last: dict[str, Any] = {}
        while len(seqs) < 30:
            last = await recv(ws)
            assert last["type"] == "changes"
            seqs += [change["seq"] for change in last["changes"]]
    assert seqs == list(range(1, 31))
    async with httpx.AsyncClient(base_url=live.url) as http:
        assert last["cursor"] == (await http.get("/v1/sync/pull")).json()["cursor"]
    assert sum(direct_writes) >= 15, direct_writes


async def test_compressed_connections_never_take_the_direct_path(
    live: LiveNode, direct_writes: list[bool]
) -> None:
    """With permessage-deflate every frame goes through the protocol's compressor."""
    async with connect(f"{live.ws_url}/v1/realtime", compression="deflate") as ws:
        await subscribe(ws, ["todos"])
        await write_one_at_a_time(live.url, 10)
        seqs: list[int] = []
        while len(seqs) < 10:
            seqs += [change["seq"] for change in (await recv(ws))["changes"]]
    assert seqs == list(range(1, 11))
    assert not any(direct_writes)


async def test_control_messages_and_direct_changes_keep_their_order(
    live: LiveNode, direct_writes: list[bool]
) -> None:
    """Pings sent while changes flow are all answered; no change is lost or repeated."""
    async with connect(f"{live.ws_url}/v1/realtime", compression=None) as ws:
        await subscribe(ws, ["todos"])
        writer = asyncio.ensure_future(write_one_at_a_time(live.url, 40))
        for _ in range(20):
            await ws.send(json.dumps({"type": "ping"}))
            await asyncio.sleep(0.005)
        await writer
        seqs: list[int] = []
        pongs = 0
        while len(seqs) < 40 or pongs < 20:
            message = await recv(ws)
            if message["type"] == "pong":
                pongs += 1
            else:
                assert message["type"] == "changes", message
                seqs += [change["seq"] for change in message["changes"]]
    assert seqs == list(range(1, 41))
    assert pongs == 20
    assert any(direct_writes)


def test_text_frames_follow_rfc_6455_lengths() -> None:
    """7-bit, 16-bit and 64-bit payload lengths, FIN set, text opcode, no mask."""
    for size, header in ((5, b"\x81\x05"), (126, b"\x81\x7e\x00\x7e"), (70_000, None)):
        frame = websocket.text_frame(b"x" * size)
        if header is not None:
            assert frame.startswith(header)
        else:
            assert frame[:2] == b"\x81\x7f" and int.from_bytes(frame[2:10], "big") == size
        assert frame.endswith(b"x" * size) and len(frame) - size in (2, 4, 10)
