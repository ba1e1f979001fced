"""``GET /v1/regions``: every region's public endpoints and state, for anyone, no secrets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from breakwater.server.regions_api import peer_state
from tests.replication.harness import Cluster, Region, eventually

pytestmark = pytest.mark.timeout(120)


async def directory(region: Region) -> dict[str, Any]:
    """The region's directory, asked anonymously (no credentials at all)."""
    transport = httpx.ASGITransport(app=region.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as anonymous:
        answer = await anonymous.get("/v1/regions")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def states(body: dict[str, Any]) -> dict[str, str]:
    return {region["name"]: region["state"] for region in body["regions"]}


async def test_directory_lists_every_region_with_endpoints_and_replicated_state(
    cluster: Cluster,
) -> None:
    """An app that knows region a learns b (a standby) and c, their public URLs and states."""
    regions = await cluster.start(
        {"a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b"]}, states={"b": "standby"}
    )

    async def learned() -> bool:
        return states(await directory(regions["a"])) == {
            "a": "active",
            "b": "standby",
            "c": "active",
        }

    await eventually(learned, what="peer states in the directory")
    body = await directory(regions["a"])
    assert body["region"] == "a" and body["ttl"] > 0
    assert {r["name"]: r["endpoints"] for r in body["regions"]} == {
        "a": ["http://a.test"],
        "b": ["http://b.test"],
        "c": ["http://c.test"],
    }
    assert [r["name"] for r in body["regions"] if r["this"]] == ["a"]
    text = str(body)
    for key in cluster.keys.values():
        assert key not in text  # replication keys never leave the region
    assert "key" not in {field for region in body["regions"] for field in region}


async def test_a_draining_node_says_its_region_is_draining(cluster: Cluster) -> None:
    """SDKs read ``draining`` and move on before the node stops answering."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]})
    regions["a"].node.start_draining()
    assert states(await directory(regions["a"]))["a"] == "draining"
    assert states(await directory(regions["b"]))["b"] == "active"


def test_peer_state_from_the_replication_row() -> None:
    """No page yet is unknown, a recent page tells the peer's state, an old one unreachable."""
    stale_ms = 10_000.0
    assert peer_state({}, 50_000, stale_ms) == "unknown"
    assert peer_state({"updated_ms": 45_000, "state": "standby"}, 50_000, stale_ms) == "standby"
    assert peer_state({"updated_ms": 45_000, "state": "active"}, 50_000, stale_ms) == "active"
    assert peer_state({"updated_ms": 39_000, "state": "active"}, 50_000, stale_ms) == "unreachable"
    assert peer_state({"updated_ms": 45_000, "state": "weird"}, 50_000, stale_ms) == "unknown"
