"""``POST /v1/sync/push?include_state=true``: the answer lets a device settle its own writes."""

from __future__ import annotations

import httpx

from tests.conftest import origin_of
from tests.server.test_sync import PUSH, mutation, pull


async def test_include_state_answers_the_state_a_pull_brings_and_stable(
    client: httpx.AsyncClient,
) -> None:
    """Each applied result carries the document's state, equal to what a pull of that change
    brings, and ``stable`` covers the pushed changes (one region: durable is stable)."""
    body = {"mutations": [mutation("m1", "a", data={"t": 1}), mutation("m2", "b", op="delete")]}
    response = await client.post(PUSH, params={"include_state": "true"}, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    pulled = {
        c["mutation_id"]: c["state"] for c in (await pull(client, include_state=True))["changes"]
    }
    assert [r["state"] for r in answer["results"]] == [pulled["m1"], pulled["m2"]]
    assert answer["stable"] == {origin_of(client): 2}


async def test_a_duplicate_carries_no_state(client: httpx.AsyncClient) -> None:
    """A duplicate was applied before: the answer names its change only (a pull brings it)."""
    body = {"mutations": [mutation("m1")]}
    await client.post(PUSH, json=body)
    response = await client.post(PUSH, params={"include_state": "true"}, json=body)
    [result] = response.json()["results"]
    assert result["status"] == "duplicate"
    assert "state" not in result


async def test_without_include_state_the_answer_is_as_before(client: httpx.AsyncClient) -> None:
    """Other clients do not pay for states they do not use."""
    response = await client.post(PUSH, json={"mutations": [mutation("m1")]})
    answer = response.json()
    assert set(answer) == {"results", "hlc"}
    assert "state" not in answer["results"][0]


async def test_a_bad_include_state_is_refused_and_applies_nothing(
    client: httpx.AsyncClient,
) -> None:
    """``include_state`` is ``true`` or ``false``; anything else is a 400 before any write."""
    response = await client.post(
        PUSH, params={"include_state": "yes please"}, json={"mutations": [mutation("m1")]}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "include_state"
    assert (await pull(client))["changes"] == []


async def test_openapi_describes_include_state(client: httpx.AsyncClient) -> None:
    """The push's query parameter and the members it adds are in the OpenAPI document."""
    push = (await client.get("/openapi.json")).json()["paths"]["/v1/sync/push"]["post"]
    assert [p["name"] for p in push["parameters"]] == ["include_state"]
    answer = push["responses"]["200"]["content"]["application/json"]["schema"]
    assert "stable" in answer["properties"]
    assert "state" in answer["properties"]["results"]["items"]["properties"]
