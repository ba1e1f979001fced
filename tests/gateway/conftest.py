"""A region behind a real HAProxy: nodes on one SQLite file, a gateway rendered for them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from breakwater.gateway import (
    GatewayPlan,
    HaproxyProcess,
    HealthChecks,
    Node,
    Strategy,
    Timeouts,
)
from tests.conftest import ServerProcess, free_port
from tests.services import require_program
from tests.storage.backends import drop_schema, postgres_url

FAST_CHECKS = HealthChecks(
    interval=0.2, fast_interval=0.1, down_interval=0.2, fall=2, rise=2, timeout=0.5
)
"""Checks quick enough for tests; a node drains longer than they take to notice."""
DRAIN_GRACE = FAST_CHECKS.seconds_to_notice() + 0.7
TEST_TIMEOUTS = Timeouts(request=3.0, stream=15.0, tunnel=60.0, client=20.0)


@pytest.fixture
def haproxy() -> str:
    """The haproxy program (skips, or fails under BREAKWATER_REQUIRE_SERVICES=1, without it)."""
    return require_program("haproxy")


@dataclass
class Region:
    """Nodes of one region over one SQLite file, behind one gateway."""

    nodes: dict[str, ServerProcess]
    gateway: HaproxyProcess

    @property
    def url(self) -> str:
        """The gateway's URL: where clients connect."""
        return self.gateway.url

    def wait_state(self, server: str, prefix: str, seconds: float = 10) -> None:
        """Wait until HAProxy reports ``server`` in a state starting with ``prefix``."""
        deadline = time.monotonic() + seconds
        while (state := self.gateway.server_states().get(server, "")).split()[0:1] != [prefix]:
            assert time.monotonic() < deadline, f"{server} is {state!r}, not {prefix}"
            time.sleep(0.05)


@pytest.fixture
def start_region(
    haproxy: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> Iterator[Callable[..., Region]]:
    """Start ``count`` nodes (names n1…) on one data folder and an HAProxy in front of them."""
    gateways: list[HaproxyProcess] = []

    def start(
        count: int = 3,
        *,
        weights: tuple[int, ...] = (),
        strategy: Strategy = "roundrobin",
        store: str | None = None,
    ) -> Region:
        """Nodes share one data folder: its SQLite file, or with ``store`` a PostgreSQL store
        (the folder then holds only the signing keys they share)."""
        data = tmp_path / "data"
        nodes = {}
        for index in range(count):
            name = f"n{index + 1}"
            nodes[name] = start_server(data, "--node", name, "--drain-grace", f"{DRAIN_GRACE:.2f}")
        servers = tuple(
            Node.from_url(server.url, name=name, weight=weights[i] if weights else 1)
            for i, (name, server) in enumerate(nodes.items())
        )
        plan = GatewayPlan(
            servers,
            strategy=strategy,
            bind_port=free_port(),
            checks=FAST_CHECKS,
            timeouts=TEST_TIMEOUTS,
            name_server_in_response=True,
        )
        gateway = HaproxyProcess(plan, tmp_path / "gateway", haproxy)
        gateway.start()
        gateways.append(gateway)
        region = Region(nodes, gateway)
        for name in nodes:
            region.wait_state(name, "UP")
        return region

    yield start
    for gateway in gateways:
        with contextlib.suppress(Exception):
            gateway.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
async def region_store(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """The store of a region's nodes: one SQLite file (None), or a PostgreSQL schema of this
    test's own (skipped, or failed under BREAKWATER_REQUIRE_SERVICES=1, without PostgreSQL)."""
    if request.param == "sqlite":
        yield None
        return
    url, schema = postgres_url(pool_size="4")
    yield url
    await drop_schema(schema)


def served_by(response: httpx.Response) -> str:
    """The server HAProxy sent a request to (the plan's ``name_server_in_response``)."""
    return str(response.headers.get("x-served-by", ""))
