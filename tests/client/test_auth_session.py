"""``client.auth`` against a real ``breakwater serve`` in mode ``enforce`` with owner rules and
4-second access tokens: sign-in, isolation per user on every transport, transparent refresh,
in-place re-authentication of the WebSocket, one refresh for concurrent 401s, refusals that sign
out without losing writes, anonymous accounts that link an email."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from breakwater.client import AuthChanged, Client, MfaRequired, MutationRejected, NotSignedIn
from breakwater.client.endpoints import EndpointPool
from breakwater.client.local_store import LocalStore
from breakwater.client.node_api import NodeApi
from breakwater.client.session import Auth
from breakwater.client.transports import WebSocketTransport
from breakwater.core.errors import Unauthorized
from tests.client.conftest import record_events
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

ACCESS_TTL = 4.0
CONFIG = f"""
realtime_heartbeat = 1.0  # the node checks a stream's token expiry at each heartbeat

[auth]
mode = "enforce"
access_ttl = {ACCESS_TTL}
password_memory_kib = 64
password_time_cost = 1
rate_auth_per_ip = 0

[collections.notes]
owner = "owner"
rules.read = "auth.uid == doc.owner"
rules.write = "auth.uid == doc.owner"

[collections.announcements]
rules.read = "true"
"""
EXPIRED_AT_NODE = ACCESS_TTL + 5 + 1  # the node accepts tokens up to 5 s past ``exp``
PASSWORD = "correct horse"
_emails = itertools.count()


def email(name: str) -> str:
    return f"{name}{next(_emails)}@example.com"


@pytest.fixture
def auth_server(tmp_path: Path, start_server: Callable[..., ServerProcess]) -> ServerProcess:
    config = tmp_path / "breakwater.toml"
    config.write_text(CONFIG)
    return start_server(None, "--config", str(config))


async def node_docs(device: Client, collection: str = "notes") -> dict[str, dict[str, Any]]:
    """Every document of ``collection`` the node's feed shows the device's user, by id."""
    url = device.status.endpoint or ""
    docs: dict[str, dict[str, Any]] = {}
    cursor = ""
    async with httpx.AsyncClient() as http:
        while True:
            answer = await http.get(
                f"{url}/v1/sync/pull",
                params={"cursor": cursor, "limit": 1000},
                headers=await device.auth(),
            )
            assert answer.status_code == 200, answer.text
            page = answer.json()
            for change in page["changes"]:
                if change["collection"] == collection and not change["deleted"]:
                    docs[change["id"]] = change
            cursor = page["cursor"]
            if not page["has_more"]:
                return docs


async def local_ids(device: Client, collection: str = "notes") -> set[str]:
    return {doc.id for doc in await device.collection(collection).query()}


async def wait_for(predicate: Callable[[], Any], seconds: float) -> None:
    """Poll ``predicate`` (async) until it holds; fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not await predicate():  # noqa: ASYNC110  (state spread over devices and disk)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("transport", ["websocket", "sse", "long_poll"])
async def test_each_user_syncs_only_their_own_documents(
    auth_server: ServerProcess, make_device: Callable[..., Any], transport: str
) -> None:
    """Ann (two devices) and Bob write notes; each device ends with exactly its user's notes,
    and Ann's second device receives her new note over the realtime transport."""
    ann_email = email("ann")
    phone = await make_device(auth_server.url, "ann-phone", transports=(transport,))
    tablet = await make_device(auth_server.url, "ann-tablet", transports=(transport,))
    bob = await make_device(auth_server.url, "bob", transports=(transport,))
    ann_state = await phone.auth.sign_up(ann_email, PASSWORD)
    assert ann_state.kind == "signed_in" and ann_state.uid
    assert (await tablet.auth.sign_in(ann_email, PASSWORD)).uid == ann_state.uid
    await bob.auth.sign_up(email("bob"), PASSWORD)
    await phone.collection("notes").set("a1", {"text": "ann's"})
    await bob.collection("notes").set("b1", {"text": "bob's"})
    async with asyncio.timeout(30):
        for device in (phone, tablet, bob):
            await device.wait_synced()
    assert set(await node_docs(phone)) == {"a1"}
    assert (await node_docs(phone))["a1"]["data"]["owner"] == ann_state.uid
    assert set(await node_docs(bob)) == {"b1"}

    await wait_for(lambda: _has(tablet, "a1"), 30)  # realtime (or the pull after it)
    assert tablet.status.transport == transport
    await phone.collection("notes").set("a2", {"text": "again"})
    await wait_for(lambda: _has(tablet, "a2"), 30)  # pushed by the phone, streamed to the tablet
    assert await local_ids(tablet) == {"a1", "a2"}
    assert await local_ids(bob) == {"b1"}
    assert await bob.rejections() == [] and await phone.rejections() == []


async def test_sdk_queries_never_see_another_users_hidden_values(
    auth_server: ServerProcess, make_device: Callable[..., Any]
) -> None:
    """The SDK queries its local store, which holds only what the node let the user read: a
    range query over a value of Bob's finds nothing of his (documents nor their count)."""
    ann = await make_device(auth_server.url, "ann")
    bob = await make_device(auth_server.url, "bob")
    await ann.auth.sign_up(email("ann"), PASSWORD)
    await bob.auth.sign_up(email("bob"), PASSWORD)
    await bob.collection("notes").set("b1", {"n": 42})
    async with asyncio.timeout(30):
        await bob.wait_synced()
        await ann.collection("notes").set("a1", {"n": 7})
        await ann.wait_synced()  # her write settles once her cursor is past it, so past Bob's
    for where in (["n:gt:8"], ["n:lt:100"], ["n:eq:42"]):
        found = await ann.collection("notes").query(where, order_by="-n", limit=1)
        assert [doc.id for doc in found] == ([] if where != ["n:lt:100"] else ["a1"])


async def _has(device: Client, doc_id: str) -> bool:
    return doc_id in await local_ids(device)


def _websocket_of(device: Client) -> WebSocketTransport:
    transports = device._loop._transports  # type: ignore[union-attr]
    transport = transports[0]
    assert isinstance(transport, WebSocketTransport)
    return transport


@pytest.mark.parametrize("transport", ["websocket", "sse"])
async def test_expiring_token_is_refreshed_without_losing_or_duplicating_writes(
    auth_server: ServerProcess, make_device: Callable[..., Any], transport: str
) -> None:
    """Over three token lifetimes the phone writes steadily and the tablet follows over
    realtime; every write arrives exactly once, and the WebSocket is re-authenticated in place
    (one connection) rather than reconnected."""
    ann_email = email("ann")
    phone = await make_device(auth_server.url, "phone", transports=(transport,))
    tablet = await make_device(auth_server.url, "tablet", transports=(transport,))
    await phone.auth.sign_up(ann_email, PASSWORD)
    await tablet.auth.sign_in(ann_email, PASSWORD)
    await wait_for(lambda: _streaming(tablet, transport), 15)
    events = record_events(tablet) + record_events(phone)
    written = [f"n{i}" for i in range(int(3 * ACCESS_TTL / 0.25))]
    for doc_id in written:
        await phone.collection("notes").set(doc_id, {"text": doc_id})
        await asyncio.sleep(0.25)
    await wait_for(lambda: _count_is(tablet, len(written)), 30)
    async with asyncio.timeout(30):
        await phone.wait_synced()
    assert await local_ids(tablet) == set(written)
    on_node = await node_docs(phone)
    assert set(on_node) == set(written)
    mutation_ids = [c["mutation_id"] for c in on_node.values()]
    assert len(mutation_ids) == len(set(mutation_ids)) == len(written)
    assert phone.auth.refreshes >= 2 and tablet.auth.refreshes >= 2
    assert phone.auth.state.kind == tablet.auth.state.kind == "signed_in"
    assert not [e for e in events if isinstance(e, AuthChanged)]  # never signed out
    assert tablet.status.transport == transport
    if transport == "websocket":
        socket = _websocket_of(tablet)
        assert socket.connections == 1
        assert socket.reauthenticated >= 2


async def _streaming(device: Client, transport: str) -> bool:
    return device.status.transport == transport and device.status.state == "online"


async def _count_is(device: Client, count: int) -> bool:
    return len(await local_ids(device)) == count


async def test_concurrent_401s_make_one_refresh(auth_server: ServerProcess, tmp_path: Path) -> None:
    """Credentials that do not see their token expire get two 401s at once: one refresh, both
    requests retried with the new token, and the sign-in survives (a second refresh with the
    spent token would have revoked it)."""
    store = LocalStore(tmp_path / "d.db", lambda: 0)
    await store.open()
    frozen = 0.0

    async with httpx.AsyncClient() as http:
        auth = Auth(store, EndpointPool([auth_server.url], 3, 5.0), lambda: http, lambda e: None)
        auth._clock = lambda: frozen
        await auth.sign_up(email("cat"), PASSWORD)
        api = NodeApi(http, auth_server.url, auth)
        await api.pull("", 10)
        await asyncio.sleep(EXPIRED_AT_NODE)
        pages = await asyncio.gather(*(api.pull("", 10) for _ in range(4)))
        assert all("cursor" in page for page in pages)
        assert auth.refreshes == 1
        await asyncio.sleep(EXPIRED_AT_NODE)
        await api.pull("", 10)  # the rotated refresh token still works: the family is alive
        assert auth.refreshes == 2
    await store.aclose()


async def test_refused_refresh_signs_out_and_keeps_the_outbox(
    auth_server: ServerProcess, make_device: Callable[..., Any]
) -> None:
    """Another device changes the password (revoking this device's refresh token): when the
    access token runs out the device is signed out with an event; a write made then stays
    queued (not rejected), and signing in again delivers it."""
    dan_email = email("dan")
    device = await make_device(auth_server.url, "device", transports=("websocket",))
    state = await device.auth.sign_up(dan_email, PASSWORD)
    events = record_events(device)
    async with httpx.AsyncClient(base_url=auth_server.url) as http:
        other = (
            await http.post("/v1/auth/login", json={"email": dan_email, "password": PASSWORD})
        ).json()
        answer = await http.post(
            "/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "new horse battery"},
            headers={"Authorization": f"Bearer {other['access_token']}"},
        )
        assert answer.status_code == 200, answer.text
    await wait_for(lambda: _signed_out(device), 3 * ACCESS_TTL)
    await device.collection("notes").set("kept", {"text": "written while signed out"})
    await asyncio.sleep(1)
    refused = [e for e in events if isinstance(e, AuthChanged)]
    assert [e.reason for e in refused] == ["refresh_refused"]
    assert refused[0].state.kind == "signed_out"
    assert [e.doc_id for e in await device.outbox()] == ["kept"]
    assert await device.rejections() == []
    assert (await device.collection("notes").get("kept")) is not None

    assert (await device.auth.sign_in(dan_email, "new horse battery")).uid == state.uid
    async with asyncio.timeout(30):
        await device.wait_synced()
    assert (await node_docs(device))["kept"]["data"]["owner"] == state.uid


async def _signed_out(device: Client) -> bool:
    return device.auth.state.kind == "signed_out"


async def test_sign_out_then_sign_in_keeps_pending_writes(
    auth_server: ServerProcess, make_device: Callable[..., Any]
) -> None:
    eve_email = email("eve")
    device = await make_device(auth_server.url, "device", transports=("sse",))
    uid = (await device.auth.sign_up(eve_email, PASSWORD)).uid
    await device.auth.sign_out()
    assert device.auth.state.kind == "signed_out" and device.auth.state.uid is None
    await device.collection("notes").set("offline", {"text": "while signed out"})
    await asyncio.sleep(1)
    assert device.pending == 1  # refused for want of a token, not rejected
    assert await device.rejections() == []
    await device.auth.sign_in(eve_email, PASSWORD)
    async with asyncio.timeout(30):
        await device.wait_synced()
    assert (await node_docs(device))["offline"]["data"]["owner"] == uid


async def test_anonymous_offline_writes_survive_linking_an_email_and_a_restart(
    auth_server: ServerProcess, tmp_path: Path
) -> None:
    """An anonymous device writes without syncing, links an email, restarts: it is still
    signed in (the session is in the device database) and its writes reach the node as its
    own."""
    db = tmp_path / "anon.db"
    async with Client([auth_server.url], db, sync=False) as offline:
        state = await offline.auth.sign_in_anonymously()
        assert state.kind == "anonymous" and state.uid
        await offline.collection("notes").set("draft", {"text": "before linking"})
        linked = await offline.auth.link_email(email("fay"), PASSWORD)
        assert linked.kind == "signed_in" and linked.uid == state.uid
        await offline.collection("notes").set("draft2", {"text": "after linking"})
        assert offline.pending == 2
    assert db.stat().st_mode & 0o077 == 0  # the refresh token is on disk: owner-only file
    async with Client([auth_server.url], db, backoff_cap=1.0) as online:
        assert online.auth.state == linked
        async with asyncio.timeout(30):
            await online.wait_synced()
        docs = await node_docs(online)
        assert set(docs) == {"draft", "draft2"}
        assert {d["data"]["owner"] for d in docs.values()} == {state.uid}


async def test_writes_refused_by_access_rules_are_rejected_not_retried(
    auth_server: ServerProcess, make_device: Callable[..., Any]
) -> None:
    """A write to another user's document (write rule) and one to a collection without a write
    rule (closed in mode enforce) come back as rejections, rolled back; the rest applies."""
    ann = await make_device(auth_server.url, "ann", transports=("long_poll",))
    bob = await make_device(auth_server.url, "bob", transports=("long_poll",))
    await ann.auth.sign_up(email("ann"), PASSWORD)
    await bob.auth.sign_up(email("bob"), PASSWORD)
    await ann.collection("notes").set("shared-id", {"text": "ann's"})
    async with asyncio.timeout(30):
        await ann.wait_synced()
    events = record_events(bob)
    await bob.collection("notes").set("shared-id", {"text": "bob takes it"})
    await bob.collection("announcements").set("x", {"text": "bob announces"})
    await bob.collection("notes").set("mine", {"text": "bob's"})
    async with asyncio.timeout(30):
        await bob.wait_synced()
    rejected = {r.doc_id: r.problem["type"] for r in await bob.rejections()}
    assert rejected == {"shared-id": "forbidden", "x": "forbidden"}
    assert len([e for e in events if isinstance(e, MutationRejected)]) == 2
    assert await local_ids(bob) == {"mine"}
    assert await bob.collection("announcements").get("x") is None
    assert (await node_docs(ann))["shared-id"]["data"]["text"] == "ann's"


async def test_wrong_password_and_account_calls_without_sign_in(
    auth_server: ServerProcess, make_device: Callable[..., Any]
) -> None:
    device = await make_device(auth_server.url, "device", sync=False)
    address = email("gus")
    await device.auth.sign_up(address, PASSWORD)
    await device.auth.sign_out()
    with pytest.raises(Unauthorized):
        await device.auth.sign_in(address, "wrong horse")
    assert device.auth.state.kind == "signed_out"
    with pytest.raises(NotSignedIn):
        await device.auth.change_password(PASSWORD, "new horse battery")


async def test_stream_closed_with_4401_refreshes_and_reconnects(
    auth_server: ServerProcess, make_device: Callable[..., Any]
) -> None:
    """A tablet that never renews ahead of time (its clock says the token is fresh) has its
    WebSocket closed with 4401 when the token expires: it refreshes, reconnects on WebSocket and
    keeps receiving the phone's writes."""
    ann_email = email("ann")
    phone = await make_device(auth_server.url, "phone", transports=("websocket",))
    tablet = await make_device(auth_server.url, "tablet", transports=("websocket",))
    await phone.auth.sign_up(ann_email, PASSWORD)
    await tablet.auth.sign_in(ann_email, PASSWORD)
    tablet.auth._clock = lambda: 0.0  # never due: only the node's 4401 can trigger the refresh
    await wait_for(lambda: _streaming(tablet, "websocket"), 15)
    socket = _websocket_of(tablet)
    await wait_for(lambda: _reconnected(socket), 3 * ACCESS_TTL)
    assert tablet.auth.refreshes >= 1
    await phone.collection("notes").set("after", {"text": "after the 4401"})
    await wait_for(lambda: _has(tablet, "after"), 15)
    assert tablet.status.transport == "websocket"
    assert tablet.auth.state.kind == "signed_in"


async def _reconnected(socket: WebSocketTransport) -> bool:
    return socket.connections >= 2


async def test_sign_in_asks_for_a_code_when_mfa_is_on(
    auth_server: ServerProcess, make_device: Callable[..., Any]
) -> None:
    """With TOTP on, ``sign_in`` raises ``MfaRequired`` (no code, or a wrong one) and succeeds
    with a code (here a recovery code: the TOTP step was spent by the confirmation)."""
    address = email("mfa")
    device = await make_device(auth_server.url, "device", sync=False)
    await device.auth.sign_up(address, PASSWORD)
    async with httpx.AsyncClient(base_url=auth_server.url, headers=await device.auth()) as http:
        secret = (await http.post("/v1/auth/mfa/enroll")).json()["secret"]
        confirm = await http.post("/v1/auth/mfa/confirm", json={"code": pyotp.TOTP(secret).now()})
        assert confirm.status_code == 200, confirm.text
    recovery_code = confirm.json()["recovery_codes"][0]
    await device.auth.sign_out()
    with pytest.raises(MfaRequired):
        await device.auth.sign_in(address, PASSWORD)
    with pytest.raises(MfaRequired):
        await device.auth.sign_in(address, PASSWORD, otp="000000")
    assert device.auth.state.kind == "signed_out"
    state = await device.auth.sign_in(address, PASSWORD, recovery_code=recovery_code)
    assert state.kind == "signed_in"
