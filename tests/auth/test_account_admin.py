"""Disabled accounts (refused everywhere at once), account deletion per the documented policy,
and the export of a user's data, through the auth API and the admin API, on both auth stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from breakwater.auth.postgres_store import PostgresAuthStore
from breakwater.auth.sqlite_store import SqliteAuthStore
from breakwater.server.node import Node
from tests.auth.conftest import RULES, User, sign_up
from tests.realtime.conftest import LiveNode

FIELDS_OF_AN_ACCOUNT = {
    "uid",
    "email",
    "email_verified",
    "anonymous",
    "roles",
    "mfa",
    "disabled",
    "created_ms",
}


def node_of(client: httpx.AsyncClient) -> Node:
    node: Node = client.app.state.node  # type: ignore[attr-defined]
    return node


def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"ApiKey {node_of(client).auth.create_key('ops', ['admin'])[0]}"}


async def write_notes(client: httpx.AsyncClient, user: User, ids: list[str]) -> None:
    for doc_id in ids:
        put = await client.put(
            f"/v1/collections/notes/docs/{doc_id}",
            json={"owner": user.uid, "text": doc_id},
            headers=user.headers,
        )
        assert put.status_code == 201, put.text


async def test_a_disabled_account_is_refused_everywhere_until_enabled(
    auth_node: httpx.AsyncClient,
) -> None:
    """Disabled: REST reads and writes, push, refresh and sign-in refused at once with 403
    account_disabled; re-enabled: sign-in works (the old sessions stay ended)."""
    admin = admin_headers(auth_node)
    user = await sign_up(auth_node, "dis@example.com")
    await write_notes(auth_node, user, ["n1"])
    disabled = await auth_node.post(f"/v1/admin/accounts/{user.uid}/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    answers = [
        await auth_node.get("/v1/collections/notes/docs/n1", headers=user.headers),
        await auth_node.put(
            "/v1/collections/notes/docs/n2", json={"owner": user.uid}, headers=user.headers
        ),
        await auth_node.post(
            "/v1/sync/push",
            json={
                "mutations": [
                    {
                        "mutation_id": "m1",
                        "collection": "notes",
                        "id": "n3",
                        "op": "set",
                        "data": {"owner": user.uid},
                    }
                ]
            },
            headers=user.headers,
        ),
        await auth_node.get("/v1/sync/pull", headers=user.headers),
        await auth_node.post(
            "/v1/auth/login", json={"email": "dis@example.com", "password": "correct horse"}
        ),
    ]
    assert [a.status_code for a in answers] == [403] * len(answers), [a.text for a in answers]
    assert {a.json()["type"] for a in answers} == {"account_disabled"}
    refresh = await auth_node.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert refresh.status_code in (401, 403)
    found = await auth_node.get("/v1/admin/accounts", params={"q": "dis@"}, headers=admin)
    assert found.json()["accounts"][0]["disabled"] is True
    enabled = await auth_node.post(f"/v1/admin/accounts/{user.uid}/enable", headers=admin)
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    again = await auth_node.post(
        "/v1/auth/login", json={"email": "dis@example.com", "password": "correct horse"}
    )
    assert again.status_code == 200
    still_ended = await auth_node.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert still_ended.status_code == 401


async def test_an_account_disabled_elsewhere_is_refused_after_the_reload(
    auth_node: httpx.AsyncClient,
) -> None:
    """Disabled in the store by another node or the CLI: refused once this node reloads."""
    user = await sign_up(auth_node, "other@example.com")
    node = node_of(auth_node)
    store = node.auth_store
    account = await asyncio.to_thread(store.account, user.uid)
    assert account is not None
    await asyncio.to_thread(store.update_account, replace(account, disabled=True))
    await node.auth.reload_disabled()
    answer = await auth_node.get("/v1/collections/notes/docs/x", headers=user.headers)
    assert answer.status_code == 403 and answer.json()["type"] == "account_disabled"


async def test_a_disabled_account_cannot_open_a_realtime_connection(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """The WebSocket and SSE handshakes refuse a disabled user's token with 403."""
    live = await make_node(RULES)
    node: Node = live.app.state.node
    async with httpx.AsyncClient(base_url=live.url) as http:
        user = await sign_up(http, "rt-off@example.com")
        await node.auth.set_disabled(user.uid, True)
        sse = await http.get("/v1/realtime/sse", headers=user.headers)
        assert sse.status_code == 403
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            f"{live.ws_url}/v1/realtime", additional_headers=user.headers
        ):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("where", ["this node", "another node"])
async def test_open_realtime_connections_of_a_disabled_account_are_closed(
    make_node: Callable[..., Awaitable[LiveNode]], where: str
) -> None:
    """Disabled through the admin API, or in the store (another node, the CLI): the open
    WebSocket gets an account_disabled error and is closed with 1008 (within the reload)."""
    live = await make_node(RULES)
    node: Node = live.app.state.node
    async with httpx.AsyncClient(base_url=live.url) as http:
        user = await sign_up(http, "rt-open@example.com")
        admin = {"Authorization": f"ApiKey {node.auth.create_key('ops', ['admin'])[0]}"}
        async with websockets.connect(
            f"{live.ws_url}/v1/realtime", additional_headers=user.headers
        ) as websocket:
            await websocket.send(json.dumps({"type": "subscribe", "collections": ["notes"]}))
            if where == "this node":
                answer = await http.post(f"/v1/admin/accounts/{user.uid}/disable", headers=admin)
                assert answer.status_code == 200
            else:
                account = await asyncio.to_thread(node.auth_store.account, user.uid)
                assert account is not None
                await asyncio.to_thread(
                    node.auth_store.update_account, replace(account, disabled=True)
                )
            errors = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        message = json.loads(await websocket.recv())
                        if message["type"] == "error":
                            errors.append(message["error"]["type"])
    assert errors == ["account_disabled"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_export_holds_the_account_and_exactly_its_documents(
    auth_node: httpx.AsyncClient,
) -> None:
    """The export is the account (no hash or secret) and every document it owns, none of
    another's; the user and an admin get the same file."""
    ann, bob = await sign_up(auth_node, "ann@example.com"), await sign_up(auth_node, "bob@x.io")
    await write_notes(auth_node, ann, ["a1", "a2", "a3"])
    await write_notes(auth_node, bob, ["b1"])
    mine = await auth_node.get("/v1/auth/account/export", headers=ann.headers)
    assert mine.status_code == 200, mine.text
    assert "attachment" in mine.headers["content-disposition"]
    export = mine.json()
    assert set(export["account"]) == FIELDS_OF_AN_ACCOUNT
    assert export["account"]["uid"] == ann.uid
    assert export["account"]["email"] == "ann@example.com"
    assert sorted(d["id"] for d in export["collections"]["notes"]) == ["a1", "a2", "a3"]
    assert all(d["data"]["owner"] == ann.uid for d in export["collections"]["notes"])
    assert "argon2" not in mine.text and "password" not in mine.text
    by_admin = await auth_node.get(
        f"/v1/admin/accounts/{ann.uid}/export", headers=admin_headers(auth_node)
    )
    assert by_admin.status_code == 200
    assert by_admin.json()["collections"] == export["collections"]
    unknown = await auth_node.get(
        "/v1/admin/accounts/nobody/export", headers=admin_headers(auth_node)
    )
    assert unknown.status_code == 404
    anonymous = await auth_node.get("/v1/auth/account/export")
    assert anonymous.status_code == 401


def _account_rows(node: Node, uid: str) -> list[tuple[Any, ...]]:
    """Every auth row that names ``uid``, read from the store's tables directly."""
    store = node.auth_store
    if isinstance(store, SqliteAuthStore):
        with store._tx() as db:
            return [
                *db.execute(
                    "SELECT email, password_hash, roles, totp_secret, recovery_hashes, disabled"
                    " FROM accounts WHERE uid = ?",
                    (uid,),
                ).fetchall(),
                *db.execute("SELECT 'refresh' FROM refresh_tokens WHERE uid = ?", (uid,)),
                *db.execute("SELECT 'one-time' FROM one_time_tokens WHERE uid = ?", (uid,)),
            ]
    assert isinstance(store, PostgresAuthStore)

    async def read(conn: Any) -> list[tuple[Any, ...]]:
        rows: list[asyncpg.Record] = [
            *await conn.fetch(
                "SELECT email, password_hash, roles, totp_secret, recovery_hashes, disabled::int"
                " FROM auth_accounts WHERE uid = $1",
                uid,
            ),
            *await conn.fetch("SELECT 'refresh' FROM auth_refresh_tokens WHERE uid = $1", uid),
            *await conn.fetch("SELECT 'one-time' FROM auth_one_time_tokens WHERE uid = $1", uid),
        ]
        return [tuple(row) for row in rows]

    return store._call(read)


async def test_deleting_ones_account_leaves_no_personal_data(
    auth_node: httpx.AsyncClient,
) -> None:
    """With the password again: the documents it owns become tombstones (in the feed, for
    devices), another user's stay; the account keeps only its uid, disabled; no token stays."""
    ann, bob = await sign_up(auth_node, "del@example.com"), await sign_up(auth_node, "keep@x.io")
    await write_notes(auth_node, ann, ["d1", "d2"])
    await write_notes(auth_node, bob, ["k1"])
    await auth_node.put("/v1/collections/open/docs/o1", json={"by": ann.uid}, headers=ann.headers)
    wrong = await auth_node.post(
        "/v1/auth/account/delete", json={"password": "not it"}, headers=ann.headers
    )
    assert wrong.status_code == 401
    deleted = await auth_node.post(
        "/v1/auth/account/delete", json={"password": "correct horse"}, headers=ann.headers
    )
    assert deleted.status_code == 204, deleted.text
    node = node_of(auth_node)
    for doc_id in ("d1", "d2"):
        doc = await node.store.get("notes", doc_id)
        assert doc is not None and doc.deleted
    kept = await node.store.get("notes", "k1")
    assert kept is not None and not kept.deleted
    # Collections without an owner field are the app's to clean (the documented policy).
    other = await node.store.get("open", "o1")
    assert other is not None and not other.deleted
    assert _account_rows(node, ann.uid) == [(None, None, "[]", None, "[]", 1)]
    # Its access token, still unexpired, is refused on every request.
    refused = await auth_node.get("/v1/collections/open/docs/o1", headers=ann.headers)
    assert refused.status_code == 403 and refused.json()["type"] == "account_disabled"
    login = await auth_node.post(
        "/v1/auth/login", json={"email": "del@example.com", "password": "correct horse"}
    )
    assert login.status_code == 401
    refresh = await auth_node.post("/v1/auth/refresh", json={"refresh_token": ann.refresh})
    assert refresh.status_code == 401
    # The address is free again.
    await sign_up(auth_node, "del@example.com")


async def test_an_anonymous_account_deletes_itself_with_its_token(
    auth_node: httpx.AsyncClient,
) -> None:
    """An anonymous account has no password: its token is its credential."""
    anon = (await auth_node.post("/v1/auth/anonymous")).json()
    headers = {"Authorization": f"Bearer {anon['access_token']}"}
    deleted = await auth_node.post("/v1/auth/account/delete", json={}, headers=headers)
    assert deleted.status_code == 204


async def test_an_admin_deletes_an_account_and_its_documents(
    auth_node: httpx.AsyncClient,
) -> None:
    """The admin delete applies the same policy; a second delete is 404."""
    admin = admin_headers(auth_node)
    user = await sign_up(auth_node, "adm-del@example.com")
    await write_notes(auth_node, user, ["x1"])
    gone = await auth_node.delete(f"/v1/admin/accounts/{user.uid}", headers=admin)
    assert gone.status_code == 204
    doc = await node_of(auth_node).store.get("notes", "x1")
    assert doc is not None and doc.deleted
    again = await auth_node.delete(f"/v1/admin/accounts/{user.uid}", headers=admin)
    assert again.status_code == 404
    assert (
        await auth_node.post(f"/v1/admin/accounts/{user.uid}/enable", headers=admin)
    ).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/auth/account/delete", {"password": 5}),
        ("POST", "/v1/auth/account/delete", {"pass": "x"}),
        ("POST", "/v1/auth/account/delete", [1]),
    ],
)
async def test_bad_deletion_requests_change_nothing(
    auth_node: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    """Wrong types and unknown fields are 4xx problems; the account stays."""
    user = await sign_up(auth_node, "bad@example.com")
    answer = await auth_node.request(method, path, json=body, headers=user.headers)
    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"] == "application/problem+json"
    me = await auth_node.get("/v1/auth/me", headers=user.headers)
    assert me.status_code == 200
    assert json.loads((await auth_node.get("/v1/auth/account/export", headers=user.headers)).text)
