"""The public status page: component states and incidents from the health history, readable
by anyone, revealing no internals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakwater.obs.status import HealthHistory, State
from tests.forwarder import Forwarder
from tests.services import POSTGRES_URL, require_service
from tests.storage.backends import drop_schema, postgres_url

COMPONENTS = ("store", "bus")
rounds = st.lists(
    st.dictionaries(st.sampled_from(COMPONENTS), st.sampled_from(list(State))), max_size=30
)


@given(rounds)
def test_incidents_are_the_runs_of_non_operational_observations(
    observations: list[dict[str, State]],
) -> None:
    """Each maximal run of non-operational rounds of a component is one incident, with its
    worst state, ended at the first operational round after it (if any)."""
    ticks = iter(range(1000))
    history = HealthHistory(clock=lambda: float(next(ticks)))
    for states in observations:
        history.observe(states)
    expected: list[tuple[str, float, State, float | None]] = []
    for component in COMPONENTS:
        run: list[State] = []
        start = 0.0
        for at, states in enumerate(observations):
            state = states.get(component)
            if state is None:
                continue
            if state is not State.OPERATIONAL:
                start = start if run else float(at)
                run.append(state)
            elif run:
                expected.append((component, start, max(run), float(at)))
                run = []
        if run:
            expected.append((component, start, max(run), None))
    got = [(i.component, i.started_at, i.worst, i.ended_at) for i in history.incidents]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    starts = [i.started_at for i in history.incidents]
    assert starts == sorted(starts, reverse=True)


def test_history_keeps_only_the_most_recent_incidents() -> None:
    """Old incidents fall off; an ongoing one is still ended when its component recovers."""
    history = HealthHistory(max_incidents=2)
    history.observe({"store": State.DOWN})
    for _ in range(3):
        history.observe({"bus": State.DEGRADED})
        history.observe({"bus": State.OPERATIONAL})
    assert [i.component for i in history.incidents] == ["bus", "bus"]
    history.observe({"store": State.OPERATIONAL})
    assert history.overall is State.OPERATIONAL


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    """A cuttable path to the shared PostgreSQL."""
    proxy = Forwarder(require_service(POSTGRES_URL))
    await proxy.start()
    yield proxy
    await proxy.aclose()


@pytest.fixture
async def node(forwarder: Forwarder, make_client: Callable[..., Any]) -> AsyncIterator[Any]:
    """A node in auth mode ``enforce`` whose PostgreSQL store is reached through the forwarder."""
    direct, schema = postgres_url(pool_size="4", timeout="2")
    url = urlsplit(direct)._replace(netloc=f"postgres@127.0.0.1:{forwarder.port}").geturl()
    yield await make_client('[auth]\nmode = "enforce"\n', store=url)
    await drop_schema(schema)


async def test_status_is_public_and_all_operational(node: httpx.AsyncClient) -> None:
    """Without a credential, in auth mode enforce, /v1/status names the region and components."""
    response = await node.get("/v1/status")
    assert response.status_code == 200
    body = response.json()
    assert body["region"]["state"] == "operational"
    assert {c["name"]: c["state"] for c in body["components"]} == {
        "store": "operational",
        "bus": "operational",
        "cache": "operational",
        "realtime": "operational",
    }
    assert body["incidents"] == []
    page = await node.get("/status")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/v1/status" in page.text


async def test_a_store_outage_is_an_incident_that_ends_and_reveals_nothing(
    node: httpx.AsyncClient, forwarder: Forwarder
) -> None:
    """The store going down makes the region and realtime down with an open incident; back up,
    the incident has an end; no host, port or error text appears on the way."""
    await forwarder.cut()
    down = await node.get("/v1/status")
    assert down.status_code == 200
    body = down.json()
    states = {c["name"]: c["state"] for c in body["components"]}
    assert body["region"]["state"] == "down"
    assert states["store"] == states["realtime"] == "down"
    incidents = sorted((i["component"], i["state"], i["ended_at"]) for i in body["incidents"])
    assert incidents == [("realtime", "down", None), ("store", "down", None)]
    readyz = (await node.get("/readyz")).json()["checks"]["store"]
    assert readyz != "ok"
    for secret in (readyz, str(forwarder.port), "127.0.0.1", "postgres"):
        assert secret not in down.text
    await forwarder.restore()
    for _ in range(100):
        up = (await node.get("/v1/status")).json()
        if up["region"]["state"] == "operational":
            break
        await asyncio.sleep(0.2)
    assert up["region"]["state"] == "operational"
    assert all(i["ended_at"] is not None for i in up["incidents"])
    assert {i["component"] for i in up["incidents"]} == {"store", "realtime"}
