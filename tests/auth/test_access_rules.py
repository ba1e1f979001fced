"""OWASP API1 (broken object-level authorization) and API3 (mass assignment): user A can never
read, change or subscribe to user B's documents, through any path."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets

from breakwater.config import load_config
from breakwater.core import cursor as cursor_mod
from breakwater.core.errors import ConfigError
from tests.auth.conftest import RULES, User, sign_up
from tests.realtime.clients import recv, sse_events, subscribe
from tests.realtime.conftest import LiveNode


async def _two_users(client: httpx.AsyncClient) -> tuple[User, User]:
    return await sign_up(client, "alice@example.com"), await sign_up(client, "bob@example.com")


async def _bobs_note(client: httpx.AsyncClient, bob: User, doc_id: str = "b1") -> None:
    response = await client.put(
        f"/v1/collections/notes/docs/{doc_id}", json={"text": "bob's secret"}, headers=bob.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["owner"] == bob.uid


async def test_rest_get_put_patch_delete_of_anothers_document_are_forbidden(
    rules_node: httpx.AsyncClient,
) -> None:
    """Alice cannot read, replace, patch or delete Bob's note; it stays as Bob wrote it."""
    alice, bob = await _two_users(rules_node)
    await _bobs_note(rules_node, bob)
    url = "/v1/collections/notes/docs/b1"
    assert (await rules_node.get(url, headers=alice.headers)).status_code == 403
    put = await rules_node.put(url, json={"text": "mine now"}, headers=alice.headers)
    assert put.status_code == 403 and put.json()["type"] == "forbidden"
    patch = await rules_node.patch(url, json={"text": "mine now"}, headers=alice.headers)
    assert patch.status_code == 403
    assert (await rules_node.delete(url, headers=alice.headers)).status_code == 403
    mine = await rules_node.get(url, headers=bob.headers)
    assert mine.json()["data"] == {"text": "bob's secret", "owner": bob.uid}


async def test_idempotency_key_replay_does_not_leak_anothers_document(
    rules_node: httpx.AsyncClient,
) -> None:
    """Reusing Bob's Idempotency-Key is a new request for Alice, not a replay of Bob's."""
    alice, bob = await _two_users(rules_node)
    url = "/v1/collections/notes/docs/k1"
    key = {"Idempotency-Key": "same-key"}
    first = await rules_node.put(url, json={"text": "bob"}, headers={**bob.headers, **key})
    assert first.status_code == 201
    replay = await rules_node.put(url, json={"text": "alice"}, headers={**alice.headers, **key})
    assert replay.status_code == 403
    assert "Idempotent-Replayed" not in replay.headers


async def test_query_returns_only_readable_documents(rules_node: httpx.AsyncClient) -> None:
    """A query over the collection shows Alice her notes and public ones, never Bob's private."""
    alice, bob = await _two_users(rules_node)
    await _bobs_note(rules_node, bob)
    await rules_node.put(
        "/v1/collections/notes/docs/pub", json={"public": True}, headers=bob.headers
    )
    await rules_node.put("/v1/collections/notes/docs/a1", json={"x": 1}, headers=alice.headers)
    page = await rules_node.get("/v1/collections/notes/docs", headers=alice.headers)
    assert page.status_code == 200
    assert sorted(doc["id"] for doc in page.json()["docs"]) == ["a1", "pub"]


async def test_push_cannot_change_anothers_document(rules_node: httpx.AsyncClient) -> None:
    """Every op Alice pushes at Bob's note is rejected with forbidden; nothing changes."""
    alice, bob = await _two_users(rules_node)
    await _bobs_note(rules_node, bob)
    mutations = [
        {"mutation_id": f"m-{op}", "collection": "notes", "id": "b1", "op": op, "data": data}
        for op, data in [
            ("set", {"text": "x"}),
            ("patch", {"text": "x"}),
            ("increment", {"n": 1}),
            ("delete", None),
        ]
    ]
    push = await rules_node.post(
        "/v1/sync/push", json={"mutations": mutations}, headers=alice.headers
    )
    assert push.status_code == 200
    results = push.json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 4
    assert {r["error"]["type"] for r in results} == {"forbidden"}
    doc = await rules_node.get("/v1/collections/notes/docs/b1", headers=bob.headers)
    assert doc.json()["data"] == {"text": "bob's secret", "owner": bob.uid}


async def test_mass_assignment_of_the_owner_field_is_refused(
    rules_node: httpx.AsyncClient,
) -> None:
    """A client cannot create a document owned by someone else or change its owner."""
    alice, bob = await _two_users(rules_node)
    forged = await rules_node.put(
        "/v1/collections/notes/docs/f1", json={"owner": bob.uid}, headers=alice.headers
    )
    assert forged.status_code == 403 and forged.json()["field"] == "owner"
    await rules_node.put("/v1/collections/notes/docs/a1", json={"x": 1}, headers=alice.headers)
    give_away = await rules_node.patch(
        "/v1/collections/notes/docs/a1", json={"owner": bob.uid}, headers=alice.headers
    )
    assert give_away.status_code == 403
    push = await rules_node.post(
        "/v1/sync/push",
        json={
            "mutations": [
                {
                    "mutation_id": "forge",
                    "collection": "notes",
                    "id": "f2",
                    "op": "set",
                    "data": {"owner": bob.uid},
                }
            ]
        },
        headers=alice.headers,
    )
    assert push.json()["results"][0]["error"]["type"] == "forbidden"
    assert (
        await rules_node.get("/v1/collections/notes/docs/f2", headers=bob.headers)
    ).status_code == 404
    same = await rules_node.put(
        "/v1/collections/notes/docs/a2", json={"owner": alice.uid}, headers=alice.headers
    )
    assert same.status_code == 201


async def test_pull_shows_only_readable_documents_and_removes_those_that_leave(
    rules_node: httpx.AsyncClient,
) -> None:
    """Alice's pull never carries Bob's private data; a note made private again is removed."""
    alice, bob = await _two_users(rules_node)
    await _bobs_note(rules_node, bob)
    url = "/v1/collections/notes/docs/shared"
    await rules_node.put(url, json={"public": True, "t": "hi"}, headers=bob.headers)
    first = (await rules_node.get("/v1/sync/pull", headers=alice.headers)).json()
    shown = {c["id"]: c for c in first["changes"]}
    assert shown["shared"]["data"]["t"] == "hi"
    assert shown["b1"]["op"] == "remove" and shown["b1"]["data"] is None
    assert "bob's secret" not in json.dumps(first)
    await rules_node.patch(url, json={"public": False}, headers=bob.headers)
    second = (
        await rules_node.get(
            "/v1/sync/pull", params={"cursor": first["cursor"]}, headers=alice.headers
        )
    ).json()
    [change] = second["changes"]
    assert change["id"] == "shared" and change["op"] == "remove" and change["deleted"] is True
    assert change["data"] is None and change["version"] == ""


async def test_closed_collections_are_refused_and_left_out_of_pulls(
    rules_node: httpx.AsyncClient,
) -> None:
    """In enforce mode a collection without rules is 403 by name and absent from a full pull."""
    user = await sign_up(rules_node, "c@example.com")
    closed = await rules_node.get("/v1/collections/secret/docs/x", headers=user.headers)
    assert closed.status_code == 403
    named = await rules_node.get(
        "/v1/sync/pull", params={"collections": "secret"}, headers=user.headers
    )
    assert named.status_code == 403
    assert (await rules_node.get("/v1/sync/pull")).status_code == 401


async def test_open_collection_is_readable_by_every_user(rules_node: httpx.AsyncClient) -> None:
    """``rules = {read = "true", write = "true"}`` opens a collection to signed-in callers."""
    alice, bob = await _two_users(rules_node)
    put = await rules_node.put("/v1/collections/open/docs/o", json={"a": 1}, headers=bob.headers)
    assert put.status_code == 201
    got = await rules_node.get("/v1/collections/open/docs/o", headers=alice.headers)
    assert got.status_code == 200


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('{ read = "auth.uid == " }', "not valid CEL"),
        ('{ read = "user.id == doc.owner" }', "unknown variables ['user']"),
        ('{ delete = "true" }', "unknown actions"),
        ("{ read = 3 }", "CEL expression in a string"),
    ],
)
def test_invalid_rules_fail_at_startup_naming_the_key(
    tmp_path: Any, rules: str, message: str
) -> None:
    """A bad rule is a ConfigError naming collections.NAME.rules."""
    file = tmp_path / "b.toml"
    file.write_text(f"[collections.notes]\nrules = {rules}\n")
    with pytest.raises(ConfigError, match=r"collections\.notes\.rules") as error:
        load_config(file, env={})
    assert message in str(error.value)


# realtime -----------------------------------------------------------------------------------


async def _live_users(make_node: Callable[..., Awaitable[LiveNode]]) -> tuple[LiveNode, User, User]:
    live = await make_node(RULES)
    async with httpx.AsyncClient(base_url=live.url) as http:
        alice, bob = await _two_users(http)
    return live, alice, bob


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_websocket_streams_only_readable_documents(
    make_node: Callable[..., Awaitable[LiveNode]], compression: str | None
) -> None:
    """Alice's WebSocket gets her notes and a removal for Bob's, never Bob's data.

    Without compression, idle connections get live changes written directly by the fan-out:
    that path must not skip the filter either.
    """
    live, alice, bob = await _live_users(make_node)
    async with websockets.connect(
        f"{live.ws_url}/v1/realtime", additional_headers=alice.headers, compression=compression
    ) as ws:
        await subscribe(ws, ["notes"])
        async with httpx.AsyncClient(base_url=live.url) as http:
            await _bobs_note(http, bob)
            await http.put("/v1/collections/notes/docs/a1", json={"mine": 1}, headers=alice.headers)
        seen: dict[str, Any] = {}
        while len(seen) < 2:
            message = await recv(ws)
            assert "bob's secret" not in json.dumps(message)
            for change in message.get("changes", []):
                seen[change["id"]] = change
        assert seen["b1"]["op"] == "remove"
        assert seen["a1"]["data"] == {"mine": 1, "owner": alice.uid}


async def test_websocket_without_a_token_is_refused_in_enforce_mode(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """No credential, no stream: the upgrade is answered 401."""
    live, _, _ = await _live_users(make_node)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{live.ws_url}/v1/realtime"):
            pass
    assert refused.value.response.status_code == 401


async def test_websocket_subscription_to_a_closed_collection_is_an_error(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """Subscribing by name to a collection without a read rule answers a forbidden error."""
    live, alice, _ = await _live_users(make_node)
    async with websockets.connect(
        f"{live.ws_url}/v1/realtime", additional_headers=alice.headers
    ) as ws:
        await ws.send(json.dumps({"type": "subscribe", "collections": ["secret"]}))
        message = await recv(ws)
        assert message["type"] == "error" and message["error"]["type"] == "forbidden"


async def test_sse_streams_only_readable_documents(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """Alice's SSE stream (token in the query, as EventSource does) never carries Bob's data."""
    live, alice, bob = await _live_users(make_node)
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        await _bobs_note(http, bob)
        await http.put("/v1/collections/notes/docs/a1", json={"mine": 1}, headers=alice.headers)
        params = {"collections": "notes", "access_token": alice.access}
        async with http.stream("GET", "/v1/realtime/sse", params=params) as stream:
            assert stream.status_code == 200
            seen: dict[str, Any] = {}

            async def read() -> None:
                async for event in sse_events(stream):
                    if event.event == "changes":
                        assert "bob's secret" not in event.data
                        for change in event.json()["changes"]:
                            seen[change["id"]] = change
                        if len(seen) >= 2:
                            return

            await asyncio.wait_for(read(), 10)
        assert seen["b1"]["op"] == "remove"
        assert seen["a1"]["data"]["mine"] == 1
        refused = await http.get("/v1/realtime/sse", params={"access_token": "forged"})
        assert refused.status_code == 401


async def test_a_stream_whose_token_expires_is_closed_and_can_be_renewed(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """An ``auth`` message renews the token (same user only); an expired one ends with 4401."""
    live = await make_node(
        RULES.replace('mode = "enforce"', 'mode = "enforce"\naccess_ttl = 2'),
        realtime_heartbeat=0.2,
        realtime_timeout=30.0,
    )
    async with httpx.AsyncClient(base_url=live.url) as http:
        alice, bob = await _two_users(http)
        fresh = await http.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})
    async with websockets.connect(
        f"{live.ws_url}/v1/realtime", additional_headers=alice.headers
    ) as ws:
        await subscribe(ws, ["notes"])
        await ws.send(json.dumps({"type": "auth", "token": bob.access}))
        refused = await recv(ws)
        assert refused["type"] == "error" and refused["error"]["type"] == "unauthorized"
        await ws.send(json.dumps({"type": "auth", "token": fresh.json()["access_token"]}))
        renewed = await recv(ws)
        assert renewed["type"] == "authenticated" and renewed["expires"] > 0
    async with websockets.connect(
        f"{live.ws_url}/v1/realtime", additional_headers=bob.headers
    ) as ws:
        await subscribe(ws, ["notes"])
        expired = await recv(ws, seconds=10)
        assert expired["type"] == "error" and expired["error"]["type"] == "unauthorized"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws, seconds=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_query_pages_are_filled_with_readable_documents_only(
    rules_node: httpx.AsyncClient,
) -> None:
    """A page holds the first readable matches; ``next`` exists only if another one follows."""
    alice, bob = await _two_users(rules_node)
    await rules_node.put("/v1/collections/notes/docs/a1", json={"rank": 1}, headers=alice.headers)
    await rules_node.put(
        "/v1/collections/notes/docs/b1", json={"rank": 2, "secret": "s3cr3t"}, headers=bob.headers
    )
    await rules_node.put("/v1/collections/notes/docs/a2", json={"rank": 3}, headers=alice.headers)
    url = "/v1/collections/notes/docs"
    whole = await rules_node.get(url, params={"order": "rank", "limit": "2"}, headers=alice.headers)
    assert [d["id"] for d in whole.json()["docs"]] == ["a1", "a2"]
    assert whole.json()["next"] is None
    params = {"order": "rank", "limit": "1"}
    first = await rules_node.get(url, params=params, headers=alice.headers)
    assert [d["id"] for d in first.json()["docs"]] == ["a1"]
    token = first.json()["next"]
    assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)) == b'[1,"a1"]'
    rest = await rules_node.get(url, params={**params, "after": token}, headers=alice.headers)
    assert [d["id"] for d in rest.json()["docs"]] == ["a2"] and rest.json()["next"] is None


async def test_range_filters_cannot_probe_a_hidden_value(rules_node: httpx.AsyncClient) -> None:
    """Alice's range queries over Bob's hidden number answer alike whatever the bound."""
    alice, bob = await _two_users(rules_node)
    await rules_node.put("/v1/collections/notes/docs/a1", json={"n": 7}, headers=alice.headers)
    await rules_node.put("/v1/collections/notes/docs/b1", json={"n": 42}, headers=bob.headers)
    pages = []
    for bound in (8, 41, 42, 43, 100):  # Alice's own document matches every one
        response = await rules_node.get(
            "/v1/collections/notes/docs",
            params={"where": f"n:lt:{bound}", "order": "n", "limit": "1"},
            headers=alice.headers,
        )
        body = response.json()
        pages.append(([d["id"] for d in body["docs"]], body["next"]))
    assert pages == [(["a1"], None)] * 5


async def test_an_anonymous_stream_cannot_sign_in_later(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """In open mode a stream opened without a token cannot take one on (limits count at connect)."""
    live = await make_node()
    async with httpx.AsyncClient(base_url=live.url) as http:
        user = await sign_up(http, "late@example.com")
    async with websockets.connect(f"{live.ws_url}/v1/realtime") as ws:
        await ws.send(json.dumps({"type": "auth", "token": user.access}))
        refused = await recv(ws)
        assert refused["type"] == "error" and refused["error"]["type"] == "unauthorized"


async def test_cached_reads_apply_the_read_rule_to_every_caller(
    rules_node: httpx.AsyncClient,
) -> None:
    """A document or query page cached for its owner is never served to another user."""
    alice = await sign_up(rules_node, "alice-cache@example.com")
    bob = await sign_up(rules_node, "bob-cache@example.com")
    path = "/v1/collections/notes/docs/secret"
    body = {"owner": alice.uid, "text": "mine"}
    assert (await rules_node.put(path, json=body, headers=alice.headers)).status_code == 201
    query = "/v1/collections/notes/docs"
    for _ in range(2):  # the second round is served from the cache
        assert (await rules_node.get(path, headers=alice.headers)).status_code == 200
        assert [
            d["id"] for d in (await rules_node.get(query, headers=alice.headers)).json()["docs"]
        ] == ["secret"]
    assert (await rules_node.get(path, headers=bob.headers)).status_code == 403
    assert (await rules_node.get(query, headers=bob.headers)).json()["docs"] == []
    metrics = (await rules_node.get("/metrics")).text
    assert 'breakwater_cache_lookups_total{result="hit"}' in metrics


async def test_changes_a_reader_may_not_see_do_not_end_its_long_poll(
    make_client: Callable[..., Any],
) -> None:
    """A write to a collection Alice may not read keeps her long-poll waiting for her own."""
    node: httpx.AsyncClient = await make_client(
        RULES + '\n[collections.inbox]\nrules.write = "true"\n'
    )
    alice, bob = await _two_users(node)
    poll = asyncio.ensure_future(
        node.get("/v1/sync/pull", params={"wait": 20}, headers=alice.headers)
    )
    await asyncio.sleep(0.2)
    await node.put("/v1/collections/inbox/docs/m1", json={"to": "alice"}, headers=bob.headers)
    await asyncio.sleep(0.2)
    await node.put("/v1/collections/open/docs/o1", json={"a": 1}, headers=alice.headers)
    body = (await asyncio.wait_for(poll, 10)).json()
    assert [(c["collection"], c["id"]) for c in body["changes"]] == [("open", "o1")]


async def test_changes_a_subscriber_may_not_see_send_it_nothing_at_their_time(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """A write to a collection Alice may not read sends her stream no message of its own; her
    next message is her own change (the cursor moves on with it, or at a heartbeat)."""
    inbox = '\n[collections.inbox]\nrules.write = "true"\n'
    live = await make_node(RULES + inbox, realtime_heartbeat=30.0, realtime_timeout=90.0)
    async with httpx.AsyncClient(base_url=live.url) as http:
        alice, bob = await _two_users(http)
        await http.put("/v1/collections/open/docs/o0", json={"a": 0}, headers=alice.headers)
        async with websockets.connect(
            f"{live.ws_url}/v1/realtime", additional_headers=alice.headers
        ) as ws:
            await subscribe(ws)
            caught_up = await recv(ws)
            assert [c["id"] for c in caught_up["changes"]] == ["o0"]
            await http.put("/v1/collections/inbox/docs/m1", json={"to": "a"}, headers=bob.headers)
            await http.put("/v1/collections/open/docs/o1", json={"a": 1}, headers=alice.headers)
            message = await recv(ws)
            assert message["type"] == "changes"
            assert [c["id"] for c in message["changes"]] == ["o1"]


async def test_a_heartbeat_moves_a_subscriber_past_changes_it_may_not_see(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """Changes Alice may not see still move her cursor: the next heartbeat hands it over."""
    inbox = '\n[collections.inbox]\nrules.write = "true"\n'
    live = await make_node(RULES + inbox, realtime_heartbeat=0.2)
    async with httpx.AsyncClient(base_url=live.url) as http:
        alice, bob = await _two_users(http)
        async with websockets.connect(
            f"{live.ws_url}/v1/realtime", additional_headers=alice.headers
        ) as ws:
            await subscribe(ws)
            await http.put("/v1/collections/inbox/docs/m1", json={"to": "a"}, headers=bob.headers)
            while (message := await recv(ws))["type"] != "changes" or not message["cursor"]:
                pass
            assert message["changes"] == []
            assert cursor_mod.decode(message["cursor"]) == {live.node.store.origin: 1}


async def test_a_refused_write_tells_nothing_of_the_document_it_would_change(
    make_client: Callable[..., Any],
) -> None:
    """Alice's writes to Bob's note are refused alike whatever his values: the write rule
    answers before the checks of the merged document (counter range, size) can."""
    node: httpx.AsyncClient = await make_client(RULES + "\n[limits]\nmax_document_bytes = 2048\n")
    alice, bob = await _two_users(node)
    put = await node.put(
        "/v1/collections/notes/docs/b1", json={"n": 10**19, "pad": "x" * 1000}, headers=bob.headers
    )
    assert put.status_code == 201, put.text
    probes = [
        ("increment", {"n": 1}),
        ("increment", {"n": 9 * 10**18}),  # would pass 64 bits
        ("patch", {"more": "y" * 100}),
        ("patch", {"more": "y" * 1000}),  # would make the document too large
    ]
    mutations = [
        {"mutation_id": f"probe{i}", "collection": "notes", "id": "b1", "op": op, "data": data}
        for i, (op, data) in enumerate(probes)
    ]
    response = await node.post(
        "/v1/sync/push", json={"mutations": mutations}, headers=alice.headers
    )
    results = response.json()["results"]
    assert [(r["status"], r["error"]["type"]) for r in results] == [("rejected", "forbidden")] * 4
