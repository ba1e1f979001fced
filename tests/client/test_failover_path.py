"""What a device does between losing its region and its first write acknowledged elsewhere:
nothing that waits on a round trip the failover does not need (issue 18's tail)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from breakwater.client import Client, MutationsAcknowledged
from tests.conftest import ServerProcess

BOUND_S = 10.0
"""How long a handler waits for what should come first (a bound, not a measured time)."""


class TwoRegions(httpx.AsyncBaseTransport):
    """Region ``a`` (``http://a``) refuses every connection; region ``b`` (``http://b``) is
    a real node, whose requests are recorded in order of arrival. With
    ``directory_waits_for_push``, b's ``GET /v1/regions`` answers only after a push arrived
    (or ``BOUND_S`` passed)."""

    def __init__(self, node: ServerProcess, directory_waits_for_push: bool = False) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.node = httpx.URL(node.url)
        self.paths: list[str] = []
        self.pushed = asyncio.Event()
        self.directory_waits_for_push = directory_waits_for_push
        self.directory_saw_push: bool | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            raise httpx.ConnectError("refused", request=request)
        self.paths.append(request.url.path)
        if request.url.path == "/v1/sync/push":
            self.pushed.set()
        if request.url.path == "/v1/regions" and self.directory_waits_for_push:
            try:
                async with asyncio.timeout(BOUND_S):
                    await self.pushed.wait()
            except TimeoutError:
                pass
            self.directory_saw_push = self.pushed.is_set()
        request.url = request.url.copy_with(host=self.node.host, port=self.node.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def written_through_b(
    tmp_path: Path, transport: TwoRegions, probe_interval: float = 60.0
) -> AsyncIterator[None]:
    """A device of regions a (first) and b writes once; enter when b acknowledged it (the
    device still runs inside). ``probe_interval``: its region probes' period (by default the
    start's probe is the only one)."""
    acknowledged = asyncio.Event()

    def listen(event: object) -> None:
        if isinstance(event, MutationsAcknowledged):
            acknowledged.set()

    phone = Client(
        [],
        tmp_path / "phone.db",
        regions={"a": ["http://a"], "b": ["http://b"]},
        http_transport=transport,
        transports=("long_poll",),
        region_probe_interval=probe_interval,
    )
    phone.on(listen)
    async with phone:
        await phone.collection("todos").set("t1", {"title": "milk"})
        async with asyncio.timeout(BOUND_S * 2):
            await acknowledged.wait()
        yield


@pytest.mark.slow
async def test_a_region_just_probed_healthy_is_used_without_another_health_check(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """The probe's answer stands for the check before switching: one /readyz, then the push."""
    transport = TwoRegions(start_server())
    async with written_through_b(tmp_path, transport):
        pass
    before_push = transport.paths[: transport.paths.index("/v1/sync/push")]
    assert before_push.count("/readyz") == 1


@pytest.mark.slow
async def test_the_push_to_a_new_region_does_not_wait_for_its_directory(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """The region directory is read beside the first sync: the push goes out meanwhile."""
    transport = TwoRegions(start_server(), directory_waits_for_push=True)
    async with written_through_b(tmp_path, transport):
        pass
    assert transport.directory_saw_push is True


class ResetAsConnected(TwoRegions):
    """As :class:`TwoRegions`, but region ``a``'s every connection fails as uvloop's does when
    the peer resets it as it is made: an AttributeError from inside httpx; ``tried_a`` is set at
    each try of a."""

    def __init__(self, node: ServerProcess) -> None:
        super().__init__(node)
        self.tried_a = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "a":
            self.tried_a.set()
            raise AttributeError("'NoneType' object has no attribute 'getpeername'")
        return await super().handle_async_request(request)


@pytest.mark.slow
async def test_the_region_prober_goes_on_after_a_probe_meets_an_unexpected_error(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """A probe of region ``a`` that fails from inside httpx is a failed probe: the device
    writes to b and keeps probing a (to move back when it answers)."""
    transport = ResetAsConnected(start_server())
    async with written_through_b(tmp_path, transport, probe_interval=0.1):
        async with asyncio.timeout(BOUND_S * 2):
            for _ in range(3):  # a tried again, three times, after the write went to b
                transport.tried_a.clear()
                await transport.tried_a.wait()
