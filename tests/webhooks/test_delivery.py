"""Delivery end to end: a real receiver on loopback that fails, times out and comes back."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.config import Config
from breakwater.server.app import create_app
from breakwater.server.webhooks.signature import verify
from tests.webhooks.conftest import FAST, MakeClient, admin_headers, caught_up, subscribe
from tests.webhooks.receiver import Received, Receiver

DOCS = "/v1/collections/notes/docs"


def events(requests: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in requests]


def check_signed(requests: list[Received], secret: str) -> None:
    """Every request verifies with the secret, and names its idempotency key in the body."""
    for request in requests:
        verify(secret, request.body, request.headers["breakwater-signature"])
        assert request.headers["idempotency-key"] == json.loads(request.body)["id"]


async def test_a_receiver_that_fails_times_out_and_comes_back_gets_every_change(
    make_client: MakeClient, receiver: Receiver
) -> None:
    """Every change arrives at least once, signed, with one key per change on every retry,
    and writes complete while the receiver is down."""
    client = await make_client(**FAST, webhook_max_attempts=1000)
    headers = admin_headers(client)
    sub = await subscribe(client, headers, receiver.url, collections=["notes"])
    receiver.mode = "fail"
    ids = [f"n{i}" for i in range(20)]
    for doc_id in ids[:10]:
        assert (await client.put(f"{DOCS}/{doc_id}", json={"i": doc_id})).status_code in (200, 201)
    await receiver.wait_for(lambda: len(receiver.requests) >= 3)
    receiver.mode = "hang"
    for doc_id in ids[10:]:
        assert (await client.put(f"{DOCS}/{doc_id}", json={"i": doc_id})).status_code in (200, 201)
    await receiver.wait_for(lambda: any(r.answered is None for r in receiver.requests))
    # Every write was answered while nothing had been delivered yet.
    assert receiver.delivered() == []
    receiver.mode = "ok"
    await receiver.wait_for(lambda: {e["doc_id"] for e in events(receiver.delivered())} == set(ids))
    check_signed(receiver.requests, sub["secret"])
    bodies: dict[str, set[bytes]] = defaultdict(set)
    keys_by_doc: dict[str, set[str]] = defaultdict(set)
    for request in receiver.requests:
        event = json.loads(request.body)
        bodies[event["id"]].add(request.body)
        keys_by_doc[event["doc_id"]].add(event["id"])
    assert all(len(keys) == 1 for keys in keys_by_doc.values()), "one key per change"
    assert all(len(variants) == 1 for variants in bodies.values()), "retries resend one body"
    retried = [r for r in receiver.requests if int(r.headers["breakwater-attempt"]) > 1]
    assert retried, "some deliveries were retried"
    log = await client.get(
        f"/v1/admin/webhooks/{sub['id']}/deliveries", params={"limit": 500}, headers=headers
    )
    outcomes = {(a["outcome"], a["error"]) for a in log.json()["deliveries"]}
    assert {("failed", "HTTP 503"), ("failed", "timeout"), ("delivered", "")} <= outcomes


async def test_the_event_carries_the_change_and_the_documents_state(
    make_client: MakeClient, receiver: Receiver
) -> None:
    """A set then a delete arrive with collection, id, op, position and state or tombstone."""
    client = await make_client(**FAST)
    sub = await subscribe(client, admin_headers(client), receiver.url)
    put = await client.put(f"{DOCS}/a", json={"title": "x"})
    await receiver.wait_for(lambda: len(receiver.delivered()) == 1)
    assert (await client.delete(f"{DOCS}/a")).status_code in (200, 204)
    await receiver.wait_for(lambda: len(receiver.delivered()) == 2)
    first, second = events(receiver.delivered())
    written = put.json()
    assert first | {"data": None} == first | {"data": None} and first["data"] == {"title": "x"}
    assert (first["collection"], first["doc_id"], first["op"]) == ("notes", "a", "set")
    assert (first["origin"], first["seq"], first["hlc"]) == (
        written["origin"],
        written["seq"],
        written["hlc"],
    )
    assert first["subscription"] == sub["id"] and not first["deleted"]
    assert (second["op"], second["deleted"], second["data"]) == ("delete", True, None)
    assert second["seq"] > first["seq"]


async def test_only_the_subscribed_collections_and_operations_are_delivered(
    make_client: MakeClient, receiver: Receiver
) -> None:
    """A subscription to deletes of ``notes`` gets neither sets nor other collections."""
    client = await make_client(**FAST)
    await subscribe(
        client, admin_headers(client), receiver.url, collections=["notes"], operations=["delete"]
    )
    await client.put("/v1/collections/other/docs/a", json={"x": 1})
    await client.delete("/v1/collections/other/docs/a")
    await client.put(f"{DOCS}/a", json={"x": 1})
    await client.delete(f"{DOCS}/a")
    await receiver.wait_for(lambda: len(receiver.delivered()) >= 1)
    await asyncio.sleep(0.5)  # let any wrong delivery arrive too
    assert [(e["collection"], e["op"]) for e in events(receiver.requests)] == [("notes", "delete")]


async def test_a_dead_letter_is_redelivered_with_its_key_when_asked(
    make_client: MakeClient, receiver: Receiver
) -> None:
    """After max attempts a delivery is dead-lettered; redelivery sends it again, same key."""
    client = await make_client(**FAST, webhook_max_attempts=3)
    headers = admin_headers(client)
    sub = await subscribe(client, headers, receiver.url)
    receiver.mode = "fail"
    await client.put(f"{DOCS}/a", json={"x": 1})
    letters_path = f"/v1/admin/webhooks/{sub['id']}/dead-letters"

    async def letters() -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await client.get(letters_path, headers=headers)).json()[
            "dead_letters"
        ]
        return result

    for _ in range(200):
        if await letters():
            break
        await asyncio.sleep(0.05)
    [letter] = await letters()
    assert letter["state"] == "dead" and letter["attempts"] == 3
    assert letter["error"] == "HTTP 503" and letter["event"]["doc_id"] == "a"
    assert len(receiver.requests) == 3
    receiver.mode = "ok"
    path = f"{letters_path}/{letter['delivery_id']}/redeliver"
    assert (await client.post(path, headers=headers)).status_code == 202
    await receiver.wait_for(lambda: len(receiver.delivered()) == 1)
    assert events(receiver.delivered())[0]["id"] == letter["delivery_id"]
    check_signed(receiver.requests, sub["secret"])
    for _ in range(100):
        if (await letters())[0]["state"] == "redelivered":
            break
        await asyncio.sleep(0.05)
    assert (await letters())[0]["state"] == "redelivered"
    assert (await client.post(path, headers=headers)).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert "breakwater_webhook_dead_letters_total 1.0" in metrics
    assert 'breakwater_webhook_attempts_total{outcome="failed"} 3.0' in metrics
    assert 'breakwater_webhook_attempts_total{outcome="delivered"} 1.0' in metrics
    assert "breakwater_webhook_deliverer 1.0" in metrics


async def test_a_node_restarted_mid_backlog_delivers_every_change(
    make_config: Any, receiver: Receiver, tmp_path: Path
) -> None:
    """The cursor is durable: changes pending when the node stops arrive after it restarts."""
    config: Config = replace(make_config(), **FAST, webhook_max_attempts=1000)
    receiver.mode = "fail"
    ids = [f"n{i}" for i in range(30)]
    app = create_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        sub = await subscribe(client, admin_headers(client), receiver.url)
        for doc_id in ids:
            await client.put(f"{DOCS}/{doc_id}", json={"i": doc_id})
        await receiver.wait_for(lambda: len(receiver.requests) >= 5)
        receiver.mode = "ok"  # some may be delivered before the stop: the rest must follow
        await receiver.wait_for(lambda: len(receiver.delivered()) >= 1)
    before = {e["doc_id"] for e in events(receiver.delivered())}
    assert before != set(ids), "the node stopped with a backlog"
    app = create_app(config)
    async with app.router.lifespan_context(app):
        await receiver.wait_for(
            lambda: {e["doc_id"] for e in events(receiver.delivered())} == set(ids)
        )
    check_signed(receiver.requests, sub["secret"])


@pytest.mark.parametrize(("region", "delivered"), [("local", True), ("elsewhere", False)])
async def test_a_change_is_delivered_only_by_the_region_it_was_written_in(
    make_client: MakeClient, receiver: Receiver, region: str, delivered: bool
) -> None:
    """A deliverer skips changes whose origin is another region's (that region delivers them)."""
    client = await make_client(**FAST)
    node = client.app.state.node
    node.webhooks.region = region
    await subscribe(client, admin_headers(client), receiver.url)
    await client.put(f"{DOCS}/skipped-or-not", json={"x": 1})
    await client.put(f"{DOCS}/marker", json={"x": 1})
    await caught_up(node)
    assert (len(receiver.delivered()) == 2) is delivered
    assert delivered or receiver.requests == []


async def test_a_private_receiver_is_never_called_unless_allowed(
    make_client: MakeClient, receiver: Receiver
) -> None:
    """Without webhook_allow_private a loopback receiver gets nothing: attempts are refused."""
    client = await make_client(**(FAST | {"webhook_allow_private": False}), webhook_max_attempts=2)
    headers = admin_headers(client)
    sub = await subscribe(client, headers, receiver.url)
    await client.put(f"{DOCS}/a", json={"x": 1})
    await caught_up(client.app.state.node)
    log = await client.get(f"/v1/admin/webhooks/{sub['id']}/deliveries", headers=headers)
    attempts = log.json()["deliveries"]
    assert [a["outcome"] for a in attempts] == ["refused", "refused"]
    assert "non-public" in attempts[0]["error"]
    assert receiver.requests == []
