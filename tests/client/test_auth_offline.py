"""``client.auth`` without a node: an unreadable stored session, no network, a closed client."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.client import Client, ClientClosed, EndpointUnavailable
from breakwater.client.local_store import LocalStore


async def test_unreadable_stored_session_opens_signed_out(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "d.db", lambda: 0)
    await store.open()
    await store.set_credential("session", '{"access_token": "a"}')  # fields missing
    await store.aclose()
    async with Client(["http://127.0.0.1:9"], tmp_path / "d.db", sync=False) as client:
        assert client.auth.state.kind == "signed_out"
    store = LocalStore(tmp_path / "d.db", lambda: 0)
    await store.open()
    assert await store.credential("session") == ""  # forgotten, not re-read at every start
    await store.aclose()


async def test_sign_in_offline_raises_unavailable_and_stays_signed_out(tmp_path: Path) -> None:
    async with Client(["http://127.0.0.1:9"], tmp_path / "d.db", sync=False) as client:
        with pytest.raises(EndpointUnavailable):
            await client.auth.sign_in("ann@example.com", "correct horse")
        assert client.auth.state.kind == "signed_out"
        await client.auth.sign_out()  # signed out already: nothing to do, no error


async def test_auth_on_a_closed_client_raises(tmp_path: Path) -> None:
    client = Client(["http://127.0.0.1:9"], tmp_path / "d.db", sync=False)
    with pytest.raises(ClientClosed):
        await client.auth.sign_in_anonymously()
