"""A ``push`` message on the realtime WebSocket: applied as ``POST /v1/sync/push`` would be,
answered with a compact ``pushed`` message (docs/protocol.md#push-over-the-realtime-websocket)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from breakwater.core.document import delta_for, empty_state, join
from tests.auth.conftest import FAST_HASH, RULES, sign_up
from tests.realtime.clients import recv, subscribe
from tests.realtime.conftest import LiveNode

HLC = "1796558439637-0000-d-1"


def mutation(mid: str, doc_id: str = "t1", op: str = "set", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"mutation_id": mid, "collection": "todos", "id": doc_id, "op": op}
    body.update(extra)
    return body


async def push(ws: ClientConnection, request_id: int, *mutations: dict[str, Any]) -> Any:
    """Send a ``push`` and return its ``pushed`` answer (skipping ``changes`` messages)."""
    await ws.send(json.dumps({"type": "push", "id": request_id, "mutations": list(mutations)}))
    while True:
        message = await recv(ws)
        if message["type"] != "changes":
            return message


async def pulled(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as http:
        page: dict[str, Any] = (
            await http.get("/v1/sync/pull", params={"include_state": "true"})
        ).json()
    return page


async def test_a_push_is_acknowledged_compactly_without_a_state_the_device_derives(
    live: LiveNode,
) -> None:
    """An applied set names its seq, version and hlc once under the answer's origin; its state
    is left out because the device's own delta joined with the state before is the node's."""
    data = {"title": "milk"}
    async with websockets.connect(f"{live.ws_url}/v1/realtime") as ws:
        answer = await push(ws, 7, mutation("d.1", data=data, hlc=HLC))
    origin = live.node.store.origin
    [change] = (await pulled(live.url))["changes"]
    assert answer == {
        "type": "pushed",
        "id": 7,
        "origin": origin,
        "results": [{"seq": 1, "version": change["version"], "hlc": HLC}],
        "hlc": answer["hlc"],
        "stable": {origin: 1},
        "derive": True,
    }
    assert join(empty_state(), delta_for("set", data, HLC, "d.1")) == change["state"]


async def test_a_state_the_device_cannot_derive_is_sent(live: LiveNode) -> None:
    """A mutation the node stamped itself, or an increment (folded by the node), carries the
    state a pull brings."""
    async with websockets.connect(f"{live.ws_url}/v1/realtime") as ws:
        answer = await push(
            ws,
            1,
            mutation("d.1", data={"title": "milk"}),
            mutation("d.2", "c1", op="increment", data={"n": 2}, hlc=HLC),
        )
    states = {c["mutation_id"]: c["state"] for c in (await pulled(live.url))["changes"]}
    assert [r["state"] for r in answer["results"]] == [states["d.1"], states["d.2"]]


async def test_a_retried_push_is_a_duplicate_on_the_socket_and_over_http(live: LiveNode) -> None:
    """The mutation id makes a repeat safe: applied once, then ``duplicate`` either way."""
    body = mutation("d.1", data={"title": "milk"}, hlc=HLC)
    async with websockets.connect(f"{live.ws_url}/v1/realtime") as ws:
        first = await push(ws, 1, body)
        again = await push(ws, 2, body)
    async with httpx.AsyncClient(base_url=live.url) as http:
        over_http = (await http.post("/v1/sync/push", json={"mutations": [body]})).json()
    assert first["results"][0]["seq"] == 1
    assert again["results"] == [{"status": "duplicate", "seq": 1}]
    assert over_http["results"][0]["status"] == "duplicate"
    assert len((await pulled(live.url))["changes"]) == 1


async def test_a_refused_mutation_and_a_refused_push(live: LiveNode) -> None:
    """A stale ``if_match`` rejects that mutation only; an invalid one refuses the whole push
    (nothing applied), and the connection and its subscription go on."""
    async with websockets.connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws, ["todos"])
        stale = mutation("d.1", data={"a": 1}, if_match="00000000000000000000")
        answer = await push(ws, 1, stale, mutation("d.2", "t2", data={"b": 2}, hlc=HLC))
        [rejected, applied] = answer["results"]
        assert rejected["status"] == "rejected"
        assert rejected["error"]["type"] == "precondition_failed"
        assert applied["seq"] == 1
        alone = await push(ws, 3, {**stale, "mutation_id": "d.5"})
        assert alone["results"] == [{"status": "rejected", "error": alone["results"][0]["error"]}]
        assert alone["origin"] is None
        bad = mutation("d.3", "t3", op="increment", data={"n": "one"})
        refused = await push(ws, 2, mutation("d.4", "t4", data={}), bad)
        assert refused["id"] == 2 and refused["error"]["type"] == "validation_error"
        assert refused["error"]["index"] == 1
        await ws.send('{"type":"ping"}')
        assert (await recv(ws))["type"] in ("pong", "changes")
    assert [c["id"] for c in (await pulled(live.url))["changes"]] == ["t2"]


async def test_a_push_without_an_id_is_an_error(live: LiveNode) -> None:
    """``id`` pairs the answer with its push: without one nothing is applied."""
    async with websockets.connect(f"{live.ws_url}/v1/realtime") as ws:
        await ws.send(json.dumps({"type": "push", "mutations": [mutation("d.1", data={})]}))
        message = await recv(ws)
    assert message["type"] == "error" and message["error"]["field"] == "id"
    assert (await pulled(live.url))["changes"] == []


async def test_the_body_limit_applies(make_node: Callable[..., Awaitable[LiveNode]]) -> None:
    """A push message over ``max_body_bytes`` is refused as the HTTP body would be."""
    live = await make_node("[limits]\nmax_body_bytes = 200\n")
    async with websockets.connect(f"{live.ws_url}/v1/realtime") as ws:
        answer = await push(ws, 1, mutation("d.1", data={"text": "x" * 300}, hlc=HLC))
    assert answer["error"]["type"] == "payload_too_large"
    assert (await pulled(live.url))["changes"] == []


async def test_the_rate_limits_apply(make_node: Callable[..., Awaitable[LiveNode]]) -> None:
    """Each push takes a token from the caller's buckets, as a request does."""
    live = await make_node(FAST_HASH + "rate_per_ip = 0.0001\nburst_per_ip = 2\n")
    async with websockets.connect(f"{live.ws_url}/v1/realtime") as ws:  # takes the first
        answer = await push(ws, 1, mutation("d.1", data={}, hlc=HLC))
        limited = await push(ws, 2, mutation("d.2", data={}, hlc=HLC))
    assert answer["results"][0]["seq"] == 1
    assert limited["error"]["type"] == "rate_limited"


async def test_access_rules_refuse_and_reject_as_over_http(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """A collection the user may not write refuses the push (403); another user's document is
    a rejected mutation; and a caller under read rules gets no states and no ``derive``."""
    live = await make_node(RULES)
    async with httpx.AsyncClient(base_url=live.url) as http:
        alice = await sign_up(http, "alice@example.com")
        bob = await sign_up(http, "bob@example.com")
        put = await http.put("/v1/collections/notes/docs/b1", json={"t": 1}, headers=bob.headers)
        assert put.status_code == 201
    note = {"collection": "notes", "op": "set", "data": {"t": 2}, "hlc": HLC}
    async with websockets.connect(
        f"{live.ws_url}/v1/realtime", additional_headers=alice.headers
    ) as ws:
        secret = {**note, "mutation_id": "a.1", "collection": "secret", "id": "s1"}
        refused = await push(ws, 1, secret)
        answer = await push(
            ws,
            2,
            {**note, "mutation_id": "a.2", "id": "b1"},
            {**note, "mutation_id": "a.3", "id": "a1"},
        )
    assert refused["error"]["type"] == "forbidden"
    [theirs, mine] = answer["results"]
    assert theirs["status"] == "rejected" and theirs["error"]["type"] == "forbidden"
    assert "state" not in mine and "derive" not in answer
