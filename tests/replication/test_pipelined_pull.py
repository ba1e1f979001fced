"""The pull sent ahead of an apply (ADR 0047): the responder records ``held``, never the ahead
pull's ``cursor``, as what the puller holds; a failed apply drops the pull in flight and starts
again from the durable cursor, each page applied once, in order."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from breakwater.core import cursor as cursor_mod
from breakwater.core.cursor import VersionVector
from tests.replication.harness import (
    Cluster,
    MemoryTarget,
    Region,
    eventually,
    mutation,
    replicating,
)

pytestmark = pytest.mark.timeout(120)


def _pull(responder: Region, key: str, **params: str) -> Any:
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return responder.client.get(
        f"/v1/replication/pull?{query}", headers={"Authorization": f"ApiKey {key}"}
    )


async def test_the_responder_records_held_not_the_cursor(cluster: Cluster) -> None:
    """A pull with ``held`` behind its ``cursor`` records ``held`` as what the peer holds, and
    its page says the responder accepts ``held``."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]})
    b = regions["b"]
    regions["a"].links["b"].up = False  # a's own replicator must not tell b what it holds
    await b.push(mutation("m1", "d1", title="x"), mutation("m2", "d2", title="y"))
    head = await b.node.store.head()
    older = {origin: seq - 1 for origin, seq in head.items()}
    answer = await _pull(
        b,
        cluster.keys["b"],
        region="a",
        cursor=cursor_mod.encode(head),
        held=cursor_mod.encode(older),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepts_held"] is True
    assert cursor_mod.covers_all(b.node.region.held["a"], older)
    assert not cursor_mod.covers_all(b.node.region.held["a"], head)


async def test_a_malformed_held_is_a_4xx_and_records_nothing(cluster: Cluster) -> None:
    """``held`` that is no cursor: 400 naming the field; the held vector does not move."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]})
    b = regions["b"]
    await b.push(mutation("m1", "d1", title="x"))
    before = dict(b.node.region.held)
    head = cursor_mod.encode(await b.node.store.head())
    answer = await _pull(b, cluster.keys["b"], region="a", cursor=head, held="not-a-cursor")
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == "held"
    assert b.node.region.held == before


class _Recording(httpx.AsyncBaseTransport):
    """The link to the peer's app, keeping each pull's ``cursor`` and ``held``; ``old``: the
    peer answers as one that predates ``held`` (no ``accepts_held`` in its pages)."""

    def __init__(self, app: Any, *, old: bool = False) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.old = old
        self.pulls: list[tuple[VersionVector, VersionVector | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if request.url.path.endswith("/pull"):
            held = params.get("held")
            self.pulls.append(
                (
                    cursor_mod.decode(params.get("cursor")),
                    None if held is None else cursor_mod.decode(held),
                )
            )
        if not self.old:
            return await self._inner.handle_async_request(request)
        del request.headers["accept-encoding"]
        response = await self._inner.handle_async_request(request)
        body = json.loads(await response.aread())
        if isinstance(body, dict):
            body.pop("accepts_held", None)
        return httpx.Response(response.status_code, json=body)


async def test_an_apply_failing_with_a_pull_in_flight_falls_back_to_the_durable_cursor(
    cluster: Cluster,
) -> None:
    """The pull sent ahead carries the durable cursor as ``held``; when the apply fails it is
    dropped, the next pull starts from the durable cursor, and every change is applied once,
    in order, with the peer never told of more than was committed."""
    regions = await cluster.start({"p": ["r"], "r": []})
    p = regions["p"]
    link = _Recording(p.app)
    target = MemoryTarget(p, "r")
    await _replicate_three(cluster, p, link, target, told=True)
    assert target.applied == ["m1", "m2", "m3"]
    assert target.failures_left == 0
    first_page_end = link.pulls[1][0]
    assert link.pulls[0] == ({}, None)  # no page seen yet: no ``held``
    assert link.pulls[1] == (first_page_end, {})  # sent ahead of the failed apply
    assert first_page_end and link.pulls[2][0] == {}  # after it: the durable cursor again
    ahead = [(cursor, held) for cursor, held in link.pulls if held is not None and held != cursor]
    assert ahead, "some pull left before its page was applied"
    held = p.node.region.held["r"]
    assert held == target.committed, "told of exactly what was committed, never more"


async def test_no_pull_goes_ahead_to_a_peer_that_predates_held(cluster: Cluster) -> None:
    """A peer whose pages lack ``accepts_held`` takes every cursor for a durable one: each pull
    then leaves after the page before is applied, without ``held``, as before."""
    regions = await cluster.start({"p": ["r"], "r": []})
    p = regions["p"]
    link = _Recording(p.app, old=True)
    target = MemoryTarget(p, "r")
    await _replicate_three(cluster, p, link, target)
    assert target.applied == ["m1", "m2", "m3"]
    assert all(held is None for _, held in link.pulls)


async def _replicate_three(
    cluster: Cluster, p: Region, link: _Recording, target: MemoryTarget, *, told: bool = False
) -> None:
    """Replicate m1, then m2 and m3, from ``p`` into ``target`` through ``link``; ``told``:
    also wait for the pull after the last apply, which tells ``p`` what ``target`` holds."""
    await p.push(mutation("m1", "d1", title="x"))
    async with replicating(cluster.keys["p"], link, target):
        await eventually(lambda: target.holds(["m1"]), what="m1 applied")
        await p.push(mutation("m2", "d2", title="y"), mutation("m3", "d3", title="z"))
        await eventually(lambda: target.holds(["m1", "m2", "m3"]), what="m2 and m3 applied")
        if told:

            async def told_all() -> bool:
                return cursor_mod.covers_all(p.node.region.held.get("r", {}), target.committed)

            await eventually(told_all, what="p told what r committed")
