"""``POST /v1/sync/push`` and ``GET /v1/sync/pull``: results, dedupe, merge order, the feed."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import origin_of

PUSH = "/v1/sync/push"
PULL = "/v1/sync/pull"
STAMP = re.compile(r"^\d{13}-\d{4}-[A-Za-z0-9_.~:-]{1,64}$")
MakeClient = Callable[..., Any]


def stamp(offset_ms: int = 0, node: str = "devA", counter: int = 0) -> str:
    """An HLC stamp ``offset_ms`` from now (within the node's skew window)."""
    return f"{int(time.time() * 1000) + offset_ms:013d}-{counter:04d}-{node}"


def mutation(
    mutation_id: str,
    doc_id: str = "a",
    op: str = "set",
    data: dict[str, Any] | None = None,
    collection: str = "todos",
    **extra: Any,
) -> dict[str, Any]:
    """The wire form of one mutation (``data`` defaults to ``{"t": 1}`` except for delete)."""
    if data is None and op != "delete":
        data = {"t": 1}
    body: dict[str, Any] = {
        "mutation_id": mutation_id,
        "collection": collection,
        "id": doc_id,
        "op": op,
        **extra,
    }
    if data is not None:
        body["data"] = data
    return body


async def push(client: httpx.AsyncClient, *mutations: dict[str, Any]) -> list[dict[str, Any]]:
    """Push ``mutations`` and return the results (the push itself must be accepted)."""
    response = await client.post(PUSH, json={"client_id": "phone-1", "mutations": list(mutations)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def pull(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    """One pull page."""
    response = await client.get(PULL, params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def document(client: httpx.AsyncClient, doc_id: str, collection: str = "todos") -> Any:
    """The data of a live document."""
    response = await client.get(f"/v1/collections/{collection}/docs/{doc_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


# -- push ---------------------------------------------------------------------------------------


async def test_push_answers_one_result_per_mutation_in_order(client: httpx.AsyncClient) -> None:
    """Results come back in the order of the mutations, each applied with its origin and seq."""
    results = await push(
        client, mutation("m1", "a"), mutation("m2", "b"), mutation("m3", "a", op="delete")
    )
    assert [r["mutation_id"] for r in results] == ["m1", "m2", "m3"]
    assert [r["status"] for r in results] == ["applied"] * 3
    origin = origin_of(client)
    assert [(r["origin"], r["seq"]) for r in results] == [(origin, 1), (origin, 2), (origin, 3)]


async def test_applied_result_names_its_feed_entry(client: httpx.AsyncClient) -> None:
    """An applied result's (origin, seq), version and hlc are those of its change in the feed."""
    [result] = await push(client, mutation("m1", data={"t": 1}))
    [change] = (await pull(client))["changes"]
    assert (change["origin"], change["seq"]) == (result["origin"], result["seq"])
    assert change["mutation_id"] == "m1"
    assert change["version"] == result["version"]
    assert change["hlc"] == result["hlc"]
    assert STAMP.match(result["hlc"])


async def test_push_answers_the_node_hlc(client: httpx.AsyncClient) -> None:
    """The push response carries the node's HLC so that devices can advance their clocks."""
    response = await client.post(PUSH, json={"mutations": [mutation("m1")]})
    assert STAMP.match(response.json()["hlc"])


async def test_node_stamps_a_mutation_without_hlc(client: httpx.AsyncClient) -> None:
    """A mutation pushed without hlc is stamped by the node, and the stamp is in the feed."""
    [result] = await push(client, mutation("m1"))
    [change] = (await pull(client))["changes"]
    assert STAMP.match(change["hlc"])
    assert change["hlc"] == result["hlc"]


async def test_pushing_a_mutation_again_is_a_duplicate(client: httpx.AsyncClient) -> None:
    """The same mutation_id pushed again answers duplicate with the original origin and seq."""
    [first] = await push(client, mutation("m1", data={"t": 1}))
    await push(client, mutation("m2", "other"))
    [again] = await push(client, mutation("m1", data={"t": 2}))

    assert first["status"] == "applied"
    assert again["status"] == "duplicate"
    assert (again["origin"], again["seq"]) == (first["origin"], first["seq"])
    assert await document(client, "a") == {"t": 1}
    assert [c["mutation_id"] for c in (await pull(client))["changes"]] == ["m1", "m2"]


async def test_a_mutation_twice_in_one_push_applies_once(client: httpx.AsyncClient) -> None:
    """Within one push the repeated mutation_id is a duplicate of the first."""
    results = await push(
        client,
        mutation("inc", op="increment", data={"n": 5}),
        mutation("inc", op="increment", data={"n": 5}),
    )
    assert [r["status"] for r in results] == ["applied", "duplicate"]
    assert (results[1]["origin"], results[1]["seq"]) == (results[0]["origin"], results[0]["seq"])
    assert await document(client, "a") == {"n": 5}
    assert len((await pull(client))["changes"]) == 1


async def test_concurrent_pushes_of_one_mutation_apply_it_once(
    client: httpx.AsyncClient,
) -> None:
    """The same mutation pushed by several requests at once is applied once, the rest duplicates."""
    pushes = [push(client, mutation("inc", op="increment", data={"n": 1})) for _ in range(8)]
    results = [result for [result] in await asyncio.gather(*pushes)]
    assert sorted(r["status"] for r in results) == ["applied"] + ["duplicate"] * 7
    assert {(r["origin"], r["seq"]) for r in results} == {(origin_of(client), 1)}
    assert await document(client, "a") == {"n": 1}


async def test_increments_sum(client: httpx.AsyncClient) -> None:
    """Increments add up across pushes, on top of the value a set wrote."""
    await push(client, mutation("s", data={"n": 10, "t": "x"}))
    await push(
        client,
        mutation("i1", op="increment", data={"n": 2}),
        mutation("i2", op="increment", data={"n": -5, "m": 1.5}),
    )
    await push(client, mutation("i3", op="increment", data={"n": 100}))
    assert await document(client, "a") == {"n": 107, "t": "x", "m": 1.5}


async def test_concurrent_increments_from_devices_all_count(client: httpx.AsyncClient) -> None:
    """Increments stamped by different devices at the same time all count (a counter, not LWW)."""
    now = stamp(-1000, "devA")
    await push(
        client,
        mutation("a1", op="increment", data={"n": 1}, hlc=now),
        mutation("b1", op="increment", data={"n": 1}, hlc=now.replace("devA", "devB")),
        mutation("c1", op="increment", data={"n": 1}, hlc=now.replace("devA", "devC")),
    )
    assert await document(client, "a") == {"n": 3}


@pytest.mark.parametrize("newer_first", [True, False], ids=["newer-first", "older-first"])
async def test_the_newer_hlc_wins_whatever_the_arrival_order(
    client: httpx.AsyncClient, newer_first: bool
) -> None:
    """Of two sets, the one with the newer HLC is the document, in either arrival order."""
    older = mutation("old", data={"who": "older", "only_old": 1}, hlc=stamp(-5000, "devA"))
    newer = mutation("new", data={"who": "newer"}, hlc=stamp(-1000, "devB"))
    first, second = (newer, older) if newer_first else (older, newer)
    await push(client, first)
    await push(client, second)
    assert await document(client, "a") == {"who": "newer"}


@pytest.mark.parametrize("newer_first", [True, False], ids=["newer-first", "older-first"])
async def test_fields_merge_last_writer_wins_per_field(
    client: httpx.AsyncClient, newer_first: bool
) -> None:
    """Patches to one field resolve by HLC; patches to different fields both survive."""
    await push(client, mutation("base", data={"x": 0, "y": 0}, hlc=stamp(-9000)))
    older = mutation("old", op="patch", data={"x": "old", "y": "old"}, hlc=stamp(-5000, "devA"))
    newer = mutation("new", op="patch", data={"x": "new"}, hlc=stamp(-1000, "devB"))
    for item in (newer, older) if newer_first else (older, newer):
        await push(client, item)
    assert await document(client, "a") == {"x": "new", "y": "old"}


async def test_a_late_older_write_is_reported_as_a_conflict(client: httpx.AsyncClient) -> None:
    """A write that arrives after a newer one and loses says so in its result."""
    await push(client, mutation("new", op="set", data={"x": 1}, hlc=stamp(-1000, "devB")))
    [late] = await push(client, mutation("old", op="patch", data={"x": 2}, hlc=stamp(-5000)))
    assert late["status"] == "applied"
    assert late["conflict"] == ["x"]
    assert await document(client, "a") == {"x": 1}


async def test_an_older_delete_does_not_remove_a_newer_document(
    client: httpx.AsyncClient,
) -> None:
    """A delete stamped before the current set leaves the document live."""
    await push(client, mutation("set", data={"x": 1}, hlc=stamp(-1000, "devB")))
    await push(client, mutation("del", op="delete", hlc=stamp(-5000)))
    assert await document(client, "a") == {"x": 1}


async def test_if_match_mismatch_is_rejected_while_the_rest_applies(
    client: httpx.AsyncClient,
) -> None:
    """A mutation whose if_match is not the current version is rejected; its neighbours apply."""
    [created] = await push(client, mutation("m0", data={"v": 0}))
    results = await push(
        client,
        mutation("m1", "b", data={"t": 1}),
        mutation("m2", "a", data={"v": 2}, if_match="0" * 20),
        mutation("m3", "a", op="patch", data={"w": 3}, if_match=created["version"]),
    )

    assert [r["status"] for r in results] == ["applied", "rejected", "applied"]
    error = results[1]["error"]
    assert error["type"] == "precondition_failed"
    assert error["status"] == 412
    assert error["current_version"] == created["version"]
    assert {"type", "title", "status", "detail"} <= set(error)
    assert "seq" not in results[1]
    assert await document(client, "a") == {"v": 0, "w": 3}
    assert await document(client, "b") == {"t": 1}


async def test_if_match_on_a_missing_document_is_rejected(client: httpx.AsyncClient) -> None:
    """if_match "*" needs a live document, so it is rejected for one that does not exist."""
    [result] = await push(client, mutation("m1", if_match="*"))
    assert result["status"] == "rejected"
    assert result["error"]["type"] == "precondition_failed"
    assert (await pull(client))["changes"] == []


SCHEMA_TOML = """
[collections.notes]
schema = {type="object", required=["title"], properties={title={type="string"}}}
"""


async def test_schema_violation_is_rejected_while_the_rest_applies(
    make_client: MakeClient,
) -> None:
    """A mutation that breaks the collection's schema is rejected; the others in the push apply."""
    client: httpx.AsyncClient = await make_client(SCHEMA_TOML)
    results = await push(
        client,
        mutation("m1", "a", collection="notes", data={"title": "ok"}),
        mutation("m2", "b", collection="notes", data={"title": 42}),
        mutation("m3", "a", collection="notes", op="patch", data={"title": None}),
        mutation("m4", "c", collection="notes", data={"title": "fine"}),
    )

    assert [r["status"] for r in results] == ["applied", "rejected", "rejected", "applied"]
    for rejected in (results[1], results[2]):
        assert rejected["error"]["type"] == "schema_violation"
        assert rejected["error"]["status"] == 422
        assert rejected["error"]["errors"]
    assert [r["seq"] for r in results if r["status"] == "applied"] == [1, 2]
    assert await document(client, "a", "notes") == {"title": "ok"}
    changes = (await pull(client))["changes"]
    assert [c["mutation_id"] for c in changes] == ["m1", "m4"]


async def test_a_rejected_mutation_can_be_retried_under_its_id(
    client: httpx.AsyncClient,
) -> None:
    """A rejection is not remembered as applied: the same mutation_id may apply later."""
    [rejected] = await push(client, mutation("m1", op="patch", data={"x": 1}, if_match="*"))
    await push(client, mutation("m0", data={"x": 0}))
    [retried] = await push(client, mutation("m1", op="patch", data={"x": 1}, if_match="*"))
    assert rejected["status"] == "rejected"
    assert retried["status"] == "applied"


@pytest.mark.parametrize("policy", ["field", "document"])
async def test_an_increment_past_64_bits_is_not_a_500(make_client: MakeClient, policy: str) -> None:
    """An increment that overflows 64-bit integers is refused with a 4xx, never a 500 (I7)."""
    client: httpx.AsyncClient = await make_client(f'[collections.c]\nconflict = "{policy}"\n')
    app = client.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as raw:
        big = 18446744073709551615
        first = await raw.post(
            PUSH, json={"mutations": [mutation("m1", collection="c", data={"n": big})]}
        )
        assert first.status_code == 200
        response = await raw.post(
            PUSH,
            json={
                "mutations": [
                    mutation("m2", "other", collection="c"),
                    mutation("m3", collection="c", op="increment", data={"n": big}),
                ]
            },
        )
        assert response.status_code < 500, response.text
        assert (await raw.get("/v1/collections/c/docs/a")).json()["data"] == {"n": big}


async def test_a_float_increment_overflow_never_turns_the_counter_into_null(
    client: httpx.AsyncClient,
) -> None:
    """An increment that would make a counter infinite does not store null in its place."""
    await push(client, mutation("m1", op="increment", data={"n": 1e308}))
    response = await client.post(
        PUSH, json={"mutations": [mutation("m2", op="increment", data={"n": 1e308})]}
    )
    assert response.status_code < 500
    assert await document(client, "a") == {"n": 1e308}


# -- pull ---------------------------------------------------------------------------------------


async def test_pull_from_the_empty_cursor_returns_every_change_in_seq_order(
    client: httpx.AsyncClient,
) -> None:
    """From the empty cursor every change comes, in seq order, with its document's envelope."""
    await push(client, mutation("m1", "a"), mutation("m2", "b", data={"x": 1}))
    await push(client, mutation("m3", "c"), mutation("m4", "b", op="delete"))

    page = await pull(client)

    changes = page["changes"]
    assert [c["seq"] for c in changes] == [1, 2, 3, 4]
    assert [c["mutation_id"] for c in changes] == ["m1", "m2", "m3", "m4"]
    assert {c["origin"] for c in changes} == {origin_of(client)}
    assert changes[0]["collection"] == "todos"
    assert changes[0]["id"] == "a"
    assert changes[0]["op"] == "set"
    assert changes[0]["data"] == {"t": 1}
    assert changes[0]["deleted"] is False
    assert changes[3]["op"] == "delete"
    assert page["has_more"] is False
    assert page["cursor"]


async def test_every_change_carries_the_current_merged_document(
    client: httpx.AsyncClient,
) -> None:
    """Each change carries its document's whole merged state and version, or the tombstone."""
    await push(client, mutation("m1", data={"a": 1}))
    await push(client, mutation("m2", op="patch", data={"b": 2}))
    version = (await client.get("/v1/collections/todos/docs/a")).json()["version"]

    changes = (await pull(client))["changes"]

    assert [c["data"] for c in changes] == [{"a": 1, "b": 2}] * 2
    assert [c["version"] for c in changes] == [version] * 2
    await push(client, mutation("m3", op="delete"))
    assert all(c["deleted"] and c["data"] is None for c in (await pull(client))["changes"])


async def test_pull_from_a_cursor_continues_without_repeats(client: httpx.AsyncClient) -> None:
    """Pulling with the returned cursor yields only later changes."""
    await push(client, mutation("m1", "a"), mutation("m2", "b"))
    first = await pull(client)
    await push(client, mutation("m3", "c"), mutation("m4", "a", op="patch", data={"p": 1}))

    second = await pull(client, cursor=first["cursor"])

    assert [c["mutation_id"] for c in first["changes"]] == ["m1", "m2"]
    assert [c["mutation_id"] for c in second["changes"]] == ["m3", "m4"]
    third = await pull(client, cursor=second["cursor"])
    assert third["changes"] == []
    assert third["cursor"] == second["cursor"]


async def test_limit_and_has_more_page_through_the_feed(client: httpx.AsyncClient) -> None:
    """Pages of `limit` changes, has_more until the last, together cover the feed exactly once."""
    for start in range(0, 25, 5):
        await push(client, *(mutation(f"m{i}", f"d{i % 7}") for i in range(start, start + 5)))

    seqs: list[int] = []
    has_more: list[bool] = []
    sizes: list[int] = []
    cursor = ""
    for _ in range(10):
        page = await pull(client, cursor=cursor, limit=10)
        seqs.extend(c["seq"] for c in page["changes"])
        sizes.append(len(page["changes"]))
        has_more.append(page["has_more"])
        cursor = page["cursor"]
        if not page["has_more"]:
            break

    assert sizes == [10, 10, 5]
    assert has_more == [True, True, False]
    assert seqs == list(range(1, 26))


async def test_a_page_that_ends_exactly_at_the_head_says_so(client: httpx.AsyncClient) -> None:
    """When the feed holds exactly `limit` changes, the page has them all and has_more is false."""
    await push(client, *(mutation(f"m{i}", f"d{i}") for i in range(4)))
    page = await pull(client, limit=4)
    assert len(page["changes"]) == 4
    assert page["has_more"] is False


async def test_collections_filters_the_feed(client: httpx.AsyncClient) -> None:
    """collections= keeps only the named collections' changes, and a later pull stays filtered."""
    await push(
        client,
        mutation("a1", collection="alpha"),
        mutation("b1", collection="beta"),
        mutation("c1", collection="gamma"),
        mutation("a2", "x", collection="alpha"),
    )

    only_alpha = await pull(client, collections="alpha")
    alpha_and_gamma = await pull(client, collections="alpha,gamma")

    assert [c["mutation_id"] for c in only_alpha["changes"]] == ["a1", "a2"]
    assert [c["mutation_id"] for c in alpha_and_gamma["changes"]] == ["a1", "c1", "a2"]
    await push(client, mutation("b2", collection="beta"), mutation("a3", "y", collection="alpha"))
    later = await pull(client, collections="alpha", cursor=only_alpha["cursor"])
    assert [c["mutation_id"] for c in later["changes"]] == ["a3"]


async def test_include_state_adds_the_crdt_state(client: httpx.AsyncClient) -> None:
    """include_state=true adds each document's CRDT state; without it there is none."""
    await push(client, mutation("m1", data={"x": 1}), mutation("m2", op="increment", data={"n": 2}))

    plain = await pull(client)
    with_state = await pull(client, include_state="true")

    assert all("state" not in c for c in plain["changes"])
    states = [c["state"] for c in with_state["changes"]]
    assert all(set(state) == {"f", "s", "x", "n"} for state in states)
    assert states[0]["f"]["x"][1] == 1
    [(origin, (upto, total, _))] = states[0]["n"]["n"]["b"].items()
    assert (origin, upto, total) == (with_state["changes"][1]["origin"], 2, 2)


async def test_stable_is_the_head_vector(client: httpx.AsyncClient) -> None:
    """stable names the committed head: empty at first, then this region's last seq."""
    assert (await pull(client))["stable"] == {}
    await push(client, *(mutation(f"m{i}", f"d{i}") for i in range(3)))
    assert (await pull(client))["stable"] == {origin_of(client): 3}
    assert (await pull(client, limit=1))["stable"] == {origin_of(client): 3}


async def test_long_poll_returns_when_a_push_commits(client: httpx.AsyncClient) -> None:
    """A pull with wait=5 and nothing new returns soon after a concurrent push commits."""
    await push(client, mutation("m0", "before"))
    cursor = (await pull(client))["cursor"]

    async def waiting_pull() -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        page = await pull(client, cursor=cursor, wait=5)
        return page, time.monotonic() - started

    waiter = asyncio.create_task(waiting_pull())
    await asyncio.sleep(0.2)
    assert not waiter.done(), "the pull should be waiting for a change"
    await push(client, mutation("m1", "after"))
    page, elapsed = await asyncio.wait_for(waiter, 10)

    assert [c["mutation_id"] for c in page["changes"]] == ["m1"]
    assert elapsed < 3, f"long-poll took {elapsed:.2f}s to notice the commit"


async def test_long_poll_with_nothing_new_returns_an_empty_page(
    client: httpx.AsyncClient,
) -> None:
    """wait=0.3 with nothing new waits, then answers no changes and the same cursor."""
    await push(client, mutation("m0"))
    cursor = (await pull(client))["cursor"]

    started = time.monotonic()
    page = await pull(client, cursor=cursor, wait=0.3)
    elapsed = time.monotonic() - started

    assert page["changes"] == []
    assert page["cursor"] == cursor
    assert page["has_more"] is False
    assert elapsed >= 0.25


async def test_long_poll_does_not_wait_when_changes_exist(client: httpx.AsyncClient) -> None:
    """A pull with wait answers at once when the cursor is behind."""
    await push(client, mutation("m0"))
    started = time.monotonic()
    page = await pull(client, wait=5)
    assert [c["mutation_id"] for c in page["changes"]] == ["m0"]
    assert time.monotonic() - started < 3


async def test_long_poll_ignores_commits_to_other_collections(client: httpx.AsyncClient) -> None:
    """A filtered long-poll keeps waiting through commits it does not want, then wakes."""

    async def waiting_pull() -> dict[str, Any]:
        return await pull(client, collections="wanted", wait=5)

    waiter = asyncio.create_task(waiting_pull())
    await asyncio.sleep(0.1)
    await push(client, mutation("other", collection="unwanted"))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await push(client, mutation("mine", collection="wanted"))
    page = await asyncio.wait_for(waiter, 10)
    assert [c["mutation_id"] for c in page["changes"]] == ["mine"]


async def test_a_counter_incremented_through_pushes_stays_small(client: httpx.AsyncClient) -> None:
    """1,000 pushed increments of one field: the value is exact and the state a few dozen bytes."""
    for batch in range(2):
        increments = [
            mutation(f"inc-{batch}-{i}", "hot", op="increment", data={"n": 1}) for i in range(500)
        ]
        await push(client, *increments)
    page = await pull(client, include_state="true", limit=1000)
    last = page["changes"][-1]
    assert last["data"] == {"n": 1000}
    assert len(json.dumps(last["state"])) < 200
