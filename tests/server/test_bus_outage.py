"""I8 with the bus's broker unreachable: two nodes on one PostgreSQL database keep serving
writes and reads, clients get every change through the feed, the health gauge follows the
broker, and the bus carries notices again by itself once the broker is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.forwarder import Forwarder
from tests.services import NATS_URL, require_service
from tests.storage.backends import drop_schema, postgres_url

GAUGE = 'breakwater_dependency_up{dependency="bus"}'
DOCS = "/v1/collections/todos/docs"


RECEIVED = 'breakwater_bus_notices_total{direction="received"}'
RECONNECTS = "breakwater_bus_reconnects_total"


def sample(metrics: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels) in a /metrics text."""
    line = next(line for line in metrics.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


def gauge(metrics: str) -> float:
    """The bus health gauge's value in a /metrics text."""
    return sample(metrics, GAUGE)


async def eventually_more(node: httpx.AsyncClient, name: str, than: float) -> None:
    """Poll /metrics until the sample ``name`` exceeds ``than`` (fails after 5 s)."""
    deadline = time.monotonic() + 5
    while sample((await node.get("/metrics")).text, name) <= than:
        assert time.monotonic() < deadline, f"{name} stayed at {than}"
        await asyncio.sleep(0.05)


async def bus_gauge_becomes(node: httpx.AsyncClient, value: float, seconds: float = 15) -> None:
    """Poll /metrics until the bus gauge shows ``value``."""
    deadline = time.monotonic() + seconds
    while gauge((await node.get("/metrics")).text) != value:
        assert time.monotonic() < deadline, f"the bus gauge never became {value}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    """A cuttable path to the shared NATS server."""
    proxy = Forwarder(require_service(NATS_URL))
    await proxy.start()
    yield proxy
    await proxy.aclose()


@pytest.fixture
async def nodes(
    forwarder: Forwarder, make_client: Callable[..., Any]
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Node A on the broker directly, node B through the forwarder; one database, one prefix."""
    store, schema = postgres_url(pool_size="4", timeout="5")
    bus = f"{NATS_URL}?prefix=test-{uuid.uuid4().hex[:12]}"
    cut_bus = urlunsplit(urlsplit(bus)._replace(netloc=f"127.0.0.1:{forwarder.port}"))
    a = await make_client(store=store, bus=bus, node="node-a")
    b = await make_client(store=store, bus=cut_bus, node="node-b")
    yield a, b
    await drop_schema(schema)


async def long_poll(node: httpx.AsyncClient, cursor: str) -> asyncio.Future[httpx.Response]:
    """A pull from ``cursor`` that waits up to 10 s for a change."""
    return asyncio.ensure_future(node.get("/v1/sync/pull", params={"cursor": cursor, "wait": 10}))


async def test_a_bus_outage_degrades_to_the_feed_and_heals_by_itself(
    nodes: tuple[httpx.AsyncClient, httpx.AsyncClient], forwarder: Forwarder
) -> None:
    """Cut B's broker: B serves, says degraded, and still gets A's changes; restore: the bus
    wakes B's long-polls again."""
    a, b = nodes
    assert gauge((await b.get("/metrics")).text) == 1.0
    cursor = (await b.get("/v1/sync/pull")).json()["cursor"]

    await forwarder.cut()
    await bus_gauge_becomes(b, 0.0)
    ready = await b.get("/readyz")
    assert ready.status_code == 200 and ready.json()["degraded"] == ["bus"]
    written = set()
    for i in range(5):
        for node, name in ((a, "a"), (b, "b")):
            ack = await node.put(f"{DOCS}/{name}{i}", json={"i": i})
            assert ack.status_code == 201
            written.add((ack.json()["origin"], ack.json()["seq"]))
    assert (await b.get(f"{DOCS}/a4")).json()["data"] == {"i": 4}
    pulled = (await b.get("/v1/sync/pull", params={"cursor": cursor})).json()
    assert {(c["origin"], c["seq"]) for c in pulled["changes"]} == written
    # A long-poll on B still learns of A's write, through the store's fallback poll.
    waiting = await long_poll(b, pulled["cursor"])
    late = (await a.put(f"{DOCS}/during", json={"x": 1})).json()
    during = (await asyncio.wait_for(waiting, 8)).json()
    assert [(c["origin"], c["seq"]) for c in during["changes"]] == [(late["origin"], late["seq"])]

    await forwarder.restore()
    await bus_gauge_becomes(b, 1.0)
    assert (await b.get("/readyz")).json()["status"] == "ready"
    assert sample((await b.get("/metrics")).text, RECONNECTS) >= 1
    heard = sample((await b.get("/metrics")).text, RECEIVED)
    waiting = await long_poll(b, during["cursor"])
    after = (await a.put(f"{DOCS}/after", json={"x": 2})).json()
    woken = (await asyncio.wait_for(waiting, 8)).json()
    assert [(c["origin"], c["seq"]) for c in woken["changes"]] == [(after["origin"], after["seq"])]
    await eventually_more(b, RECEIVED, heard)  # A's notice crossed the broker to B again
