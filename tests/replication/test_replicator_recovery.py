"""A replicator keeps pulling from a peer that comes back, whatever its last probe met: a bug
in the connection, this region's store failing the probe's page, or a reset as it connects
(a region lost and restarted; the chaos drills found a replicator that never pulled again)."""

from __future__ import annotations

import httpx
import pytest

from breakwater.core.topology import Peer
from breakwater.replication.client import PeerClient, PullFailed
from breakwater.resilience.circuit_breaker import CircuitBreaker
from tests.replication.harness import (
    Cluster,
    MemoryTarget,
    eventually,
    mutation,
    replicating,
)

pytestmark = pytest.mark.timeout(120)


class _Scripted(httpx.AsyncBaseTransport):
    """The link to the peer's app: the first pulls meet ``script``'s exceptions in turn
    (``None``: the pull goes through), the rest go through."""

    def __init__(self, app: object, script: list[BaseException | None]) -> None:
        self._inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.script = script

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.script and (failure := self.script.pop(0)) is not None:
            raise failure
        return await self._inner.handle_async_request(request)


def _down() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


async def test_a_probe_that_meets_a_bug_is_followed_by_another(cluster: Cluster) -> None:
    """Three failed pulls open the breaker; its probe then meets an error nobody counts (a bug
    below the client). The probe is presumed lost after the breaker's timeout and the next
    one catches up."""
    regions = await cluster.start({"p": ["r"], "r": []})
    p = regions["p"]
    await p.push(mutation("m1", "d1", title="x"))
    link = _Scripted(p.app, [_down(), _down(), _down(), RuntimeError("a bug under the pull")])
    target = MemoryTarget(p, "r", failures=0)
    async with replicating(cluster.keys["p"], link, target, CircuitBreaker(3, 0.3)):
        await eventually(lambda: target.holds(["m1"]), what="m1 applied after the bug")
    assert not link.script


async def test_a_probe_whose_page_this_region_fails_to_apply_closes_the_breaker(
    cluster: Cluster,
) -> None:
    """The probe's pull is answered but this region's store fails its page: the peer is up, so
    the breaker closes and the page is pulled again after the backoff, not after a breaker
    timeout (a minute here)."""
    regions = await cluster.start({"p": ["r"], "r": []})
    p = regions["p"]
    await p.push(mutation("m1", "d1", title="x"))
    link = _Scripted(p.app, [_down(), _down(), _down()])
    target = MemoryTarget(p, "r", failures=1)
    async with replicating(cluster.keys["p"], link, target, CircuitBreaker(3, 60.0)) as replicator:

        async def opened() -> bool:
            return replicator.status.breaker == "open"

        await eventually(opened, what="the breaker open after three failures")
        replicator.nudge()  # the peer is back: probe now
        await eventually(lambda: target.holds(["m1"]), what="m1 applied after the failure")
    assert target.failures_left == 0
    assert replicator.status.breaker == "closed"


async def test_a_reset_as_the_connection_is_made_is_an_unavailable_peer(cluster: Cluster) -> None:
    """asyncio's transport loses its socket when the peer resets the connection as it is made,
    and the connect step reads the peer name of ``None``: the pull failed, the peer is
    unavailable (retried with backoff), not a bug."""
    regions = await cluster.start({"p": ["r"], "r": []})
    p = regions["p"]
    reset = AttributeError("'NoneType' object has no attribute 'getpeername'")
    peer = Peer("p", ("http://p.test",), ("http://p.test",), cluster.keys["p"])
    client = PeerClient(peer, "r", transport=_Scripted(p.app, [reset]))
    try:
        with pytest.raises(PullFailed) as failed:
            await client.pull({}, 10, 0.0)
        assert failed.value.kind == "unavailable"
        assert (await client.pull({}, 10, 0.0)).page.region == "p"
    finally:
        await client.aclose()
