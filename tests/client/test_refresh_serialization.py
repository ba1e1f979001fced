"""Refresh serialisation under any interleaving (hypothesis), against a fake auth node that
rotates refresh tokens and revokes the sign-in when a spent one comes back, as a real node does.

Invariant: however many requests hit an expired token at once, each expiry costs exactly one
refresh, every request succeeds after at most one retry, and the sign-in is never revoked."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.client.endpoints import EndpointPool
from breakwater.client.local_store import LocalStore
from breakwater.client.node_api import NodeApi
from breakwater.client.session import Auth
from breakwater.core import codec

UNAUTHORIZED = {"type": "unauthorized", "title": "Unauthorized", "status": 401}


class RotatingAuthNode:
    """Access tokens valid until :meth:`expire`; refresh tokens spent by use; reuse revokes."""

    def __init__(self) -> None:
        self.generation = 0
        self.valid_access: set[str] = set()
        self.refresh_token = ""
        self.spent: set[str] = set()
        self.revoked = False
        self.refreshes = 0

    def expire(self) -> None:
        self.valid_access.clear()

    def _session(self, status: int) -> httpx.Response:
        self.generation += 1
        access, refresh = f"a{self.generation}", f"r{self.generation}"
        self.valid_access.add(access)
        self.refresh_token = refresh
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 900,
            "refresh_token": refresh,
            "uid": "u1",
            "anonymous": False,
        }
        return httpx.Response(status, json=body)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # let concurrent requests interleave
        if request.url.path == "/v1/auth/login":
            return self._session(200)
        if request.url.path == "/v1/auth/refresh":
            token = codec.loads(request.content)["refresh_token"]
            if token in self.spent or self.revoked:
                self.revoked = True
                return httpx.Response(401, json=UNAUTHORIZED)
            assert token == self.refresh_token
            self.spent.add(token)
            self.refreshes += 1
            return self._session(200)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.revoked or bearer not in self.valid_access:
            return httpx.Response(401, json=UNAUTHORIZED)
        return httpx.Response(200, json={"changes": [], "cursor": "", "has_more": False})


async def _run(rounds: list[tuple[bool, int]]) -> None:
    node = RotatingAuthNode()
    with tempfile.TemporaryDirectory() as folder:
        store = LocalStore(Path(folder) / "d.db", lambda: 0)
        await store.open()
        async with httpx.AsyncClient(transport=httpx.MockTransport(node)) as http:
            auth = Auth(store, EndpointPool(["http://node"], 3, 5.0), lambda: http, lambda e: None)
            await auth.sign_in("ann@example.com", "correct horse")
            api = NodeApi(http, "http://node", auth)
            expiries = 0
            for expire, concurrent in rounds:
                if expire:
                    node.expire()
                    expiries += 1
                pages = await asyncio.gather(*(api.pull("", 10) for _ in range(concurrent)))
                assert all(page["has_more"] is False for page in pages)
            assert not node.revoked
            assert node.refreshes == auth.refreshes == expiries
        await store.aclose()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 8)), min_size=1, max_size=6))
def test_each_expiry_costs_one_refresh_whatever_the_concurrency(
    rounds: list[tuple[bool, int]],
) -> None:
    asyncio.run(_run(rounds))


def test_unserialised_refreshes_would_be_caught() -> None:
    """The fake node does catch a double refresh (so the property above can fail)."""

    async def double_refresh() -> bool:
        node = RotatingAuthNode()
        async with httpx.AsyncClient(transport=httpx.MockTransport(node)) as http:
            session = (await http.post("http://node/v1/auth/login")).json()
            body = {"refresh_token": session["refresh_token"]}
            refresh = "http://node/v1/auth/refresh"
            await asyncio.gather(*(http.post(refresh, json=body) for _ in "ab"))
        return node.revoked

    assert asyncio.run(double_refresh())
