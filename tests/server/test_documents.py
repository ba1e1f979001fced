"""Single-document REST endpoints and queries: status codes, envelopes, ETags, pages."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import origin_of

DOCS = "/v1/collections/todos/docs"
ENVELOPE_KEYS = {"collection", "id", "version", "hlc", "origin", "seq", "deleted", "data"}
MakeClient = Callable[..., Any]


async def put(client: httpx.AsyncClient, path: str, data: dict[str, Any]) -> httpx.Response:
    """PUT ``data`` and insist that it was stored."""
    response = await client.put(path, json=data)
    assert response.status_code in (200, 201), response.text
    return response


async def feed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every change of the feed, from the empty cursor."""
    response = await client.get("/v1/sync/pull", params={"limit": 1000})
    assert response.status_code == 200
    assert response.json()["has_more"] is False
    changes: list[dict[str, Any]] = response.json()["changes"]
    return changes


async def query_ids(client: httpx.AsyncClient, path: str, **params: Any) -> list[str]:
    """The ids of one query page."""
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return [doc["id"] for doc in response.json()["docs"]]


async def walk(
    client: httpx.AsyncClient, path: str, limit: int, **params: Any
) -> list[dict[str, Any]]:
    """Every document of a query, following ``next`` tokens page by page."""
    docs: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(1000):
        page_params = {**params, "limit": limit, **({"after": after} if after else {})}
        response = await client.get(path, params=page_params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["docs"]) <= limit
        docs.extend(page["docs"])
        after = page["next"]
        if after is None:
            return docs
        assert len(page["docs"]) == limit, "a page with a next token must be full"
    raise AssertionError("pagination did not end")


# -- table-driven scenarios ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One request against a seeded node and what its answer must (not) contain."""

    name: str
    method: str
    path: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    includes: Sequence[str] = ()
    excludes: Sequence[str] = ()


SCENARIOS = [
    Scenario(
        "get a live document",
        "GET",
        f"{DOCS}/t1",
        200,
        includes=['"id":"t1"', '"collection":"todos"', '"title":"one"', '"deleted":false'],
    ),
    Scenario("get a missing document", "GET", f"{DOCS}/nope", 404, includes=['"not_found"']),
    Scenario("get a deleted document", "GET", f"{DOCS}/gone", 404, includes=['"not_found"']),
    Scenario(
        "put a new document",
        "PUT",
        f"{DOCS}/t3",
        201,
        body={"title": "three"},
        includes=['"id":"t3"', '"data":{"title":"three"}'],
    ),
    Scenario(
        "put over a live document",
        "PUT",
        f"{DOCS}/t1",
        200,
        body={"title": "uno"},
        includes=['"data":{"title":"uno"}'],
        excludes=['"done"'],
    ),
    Scenario(
        "put over a deleted document recreates it",
        "PUT",
        f"{DOCS}/gone",
        201,
        body={"title": "back"},
        includes=['"deleted":false', '"title":"back"'],
    ),
    Scenario(
        "patch a live document",
        "PATCH",
        f"{DOCS}/t1",
        200,
        body={"done": True},
        includes=['"title":"one"', '"done":true'],
    ),
    Scenario(
        "patch a missing document", "PATCH", f"{DOCS}/nope", 404, body={"a": 1}, includes=["404"]
    ),
    Scenario(
        "patch a deleted document", "PATCH", f"{DOCS}/gone", 404, body={"a": 1}, includes=["404"]
    ),
    Scenario(
        "delete a live document",
        "DELETE",
        f"{DOCS}/t2",
        200,
        includes=['"deleted":true', '"data":null'],
        excludes=['"title"'],
    ),
    Scenario("delete a missing document", "DELETE", f"{DOCS}/nope", 404, includes=["not_found"]),
    Scenario("delete a deleted document", "DELETE", f"{DOCS}/gone", 404, includes=["not_found"]),
    Scenario(
        "query all live documents",
        "GET",
        DOCS,
        200,
        includes=['"id":"t1"', '"id":"t2"', '"next":null'],
        excludes=['"id":"gone"'],
    ),
    Scenario(
        "query with a filter",
        "GET",
        DOCS,
        200,
        params={"where": "done:eq:true"},
        includes=['"id":"t2"'],
        excludes=['"id":"t1"', '"id":"gone"'],
    ),
    Scenario(
        "query one page of two",
        "GET",
        DOCS,
        200,
        params={"order": "-n", "limit": 1},
        includes=['"id":"t2"', '"next":"'],
        excludes=['"id":"t1"'],
    ),
    Scenario(
        "query an unknown collection is empty",
        "GET",
        "/v1/collections/nothing/docs",
        200,
        includes=['"docs":[]', '"next":null'],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_document_scenario(client: httpx.AsyncClient, scenario: Scenario) -> None:
    """Each scenario answers its status with the expected content and nothing excluded."""
    await put(client, f"{DOCS}/t1", {"title": "one", "done": False, "n": 1})
    await put(client, f"{DOCS}/t2", {"title": "two", "done": True, "n": 2})
    await put(client, f"{DOCS}/gone", {"title": "gone"})
    assert (await client.delete(f"{DOCS}/gone")).status_code == 200

    response = await client.request(
        scenario.method,
        scenario.path,
        json=scenario.body,
        headers=scenario.headers,
        params=scenario.params,
    )

    assert response.status_code == scenario.status, response.text
    for text in scenario.includes:
        assert text in response.text
    for text in scenario.excludes:
        assert text not in response.text


# -- one document -------------------------------------------------------------------------------


async def test_put_creates_with_201_and_version_etag(client: httpx.AsyncClient) -> None:
    """A first PUT answers 201 and the ETag is the quoted version of the body."""
    response = await client.put(f"{DOCS}/a", json={"title": "a"})
    assert response.status_code == 201
    assert response.headers["etag"] == f'"{response.json()["version"]}"'


async def test_put_replaces_with_200_and_new_etag(client: httpx.AsyncClient) -> None:
    """A second PUT answers 200, replaces every field and carries the new version as ETag."""
    first = await client.put(f"{DOCS}/a", json={"title": "a", "extra": 1})
    second = await client.put(f"{DOCS}/a", json={"title": "b"})
    assert second.status_code == 200
    assert second.json()["data"] == {"title": "b"}
    assert second.json()["version"] != first.json()["version"]
    assert second.headers["etag"] == f'"{second.json()["version"]}"'


async def test_get_returns_the_document_envelope(client: httpx.AsyncClient) -> None:
    """GET returns exactly the envelope keys, matching what the write returned."""
    written = (await client.put(f"{DOCS}/a", json={"title": "a", "n": [1, {"x": None}]})).json()
    response = await client.get(f"{DOCS}/a")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body == written
    assert body["collection"] == "todos"
    assert body["id"] == "a"
    assert body["deleted"] is False
    assert body["data"] == {"title": "a", "n": [1, {"x": None}]}
    assert body["origin"] == origin_of(client)
    assert body["seq"] == 1
    assert response.headers["etag"] == f'"{body["version"]}"'


async def test_get_with_current_etag_in_if_none_match_is_304(client: httpx.AsyncClient) -> None:
    """If-None-Match with the current ETag answers 304 with no body."""
    etag = (await client.put(f"{DOCS}/a", json={"t": 1})).headers["etag"]
    response = await client.get(f"{DOCS}/a", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


async def test_get_with_old_etag_in_if_none_match_is_200(client: httpx.AsyncClient) -> None:
    """If-None-Match with an outdated ETag answers 200 with the current document."""
    old = (await client.put(f"{DOCS}/a", json={"t": 1})).headers["etag"]
    await client.put(f"{DOCS}/a", json={"t": 2})
    response = await client.get(f"{DOCS}/a", headers={"If-None-Match": old})
    assert response.status_code == 200
    assert response.json()["data"] == {"t": 2}


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_write_with_current_version_in_if_match_succeeds(
    client: httpx.AsyncClient, method: str
) -> None:
    """If-Match with the current version lets the write through."""
    etag = (await client.put(f"{DOCS}/a", json={"t": 1})).headers["etag"]
    response = await client.request(method, f"{DOCS}/a", json={"t": 2}, headers={"If-Match": etag})
    assert response.status_code == 200
    assert response.json()["data"] == {"t": 2}


@pytest.mark.parametrize(
    ("method", "body"), [("PUT", {"t": 3}), ("PATCH", {"t": 3}), ("DELETE", None)]
)
async def test_write_with_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, method: str, body: dict[str, Any] | None
) -> None:
    """If-Match with an outdated version is 412 precondition_failed and the write is dropped."""
    stale = (await client.put(f"{DOCS}/a", json={"t": 1})).headers["etag"]
    current = (await client.put(f"{DOCS}/a", json={"t": 2})).json()
    before = await feed(client)

    response = await client.request(method, f"{DOCS}/a", json=body, headers={"If-Match": stale})

    assert response.status_code == 412
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "precondition_failed"
    assert response.json()["current_version"] == current["version"]
    assert (await client.get(f"{DOCS}/a")).json() == current
    assert await feed(client) == before


async def test_concurrent_writes_with_one_if_match_let_exactly_one_through(
    client: httpx.AsyncClient,
) -> None:
    """Of several concurrent PUTs naming the same version in If-Match, one wins, the rest 412."""
    etag = (await client.put(f"{DOCS}/a", json={"t": 0})).headers["etag"]
    responses = await asyncio.gather(
        *(client.put(f"{DOCS}/a", json={"t": i}, headers={"If-Match": etag}) for i in range(1, 9))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 7
    [winner] = [r for r in responses if r.status_code == 200]
    assert (await client.get(f"{DOCS}/a")).json() == winner.json()
    assert len(await feed(client)) == 2


async def test_if_match_star_on_a_missing_document_is_412(client: httpx.AsyncClient) -> None:
    """If-Match: * needs a live document: a PUT to a missing one is 412 and creates nothing."""
    response = await client.put(f"{DOCS}/a", json={"t": 1}, headers={"If-Match": "*"})
    assert response.status_code == 412
    assert response.json()["type"] == "precondition_failed"
    assert (await client.get(f"{DOCS}/a")).status_code == 404
    assert await feed(client) == []


async def test_if_match_star_on_a_live_document_succeeds(client: httpx.AsyncClient) -> None:
    """If-Match: * lets a write through whatever the live document's version is."""
    await client.put(f"{DOCS}/a", json={"t": 1})
    response = await client.put(f"{DOCS}/a", json={"t": 2}, headers={"If-Match": "*"})
    assert response.status_code == 200


async def test_patch_sets_and_removes_top_level_fields(client: httpx.AsyncClient) -> None:
    """PATCH sets the given fields, removes those given as null and keeps the others."""
    await client.put(f"{DOCS}/a", json={"keep": 1, "change": 2, "drop": 3})
    response = await client.patch(f"{DOCS}/a", json={"change": 20, "drop": None, "new": [4]})
    assert response.status_code == 200
    expected = {"keep": 1, "change": 20, "new": [4]}
    assert response.json()["data"] == expected
    assert (await client.get(f"{DOCS}/a")).json()["data"] == expected


async def test_patch_replaces_nested_values_whole(client: httpx.AsyncClient) -> None:
    """PATCH works on top-level fields only: a nested object is replaced, not merged."""
    await client.put(f"{DOCS}/a", json={"obj": {"x": 1, "y": 2}})
    response = await client.patch(f"{DOCS}/a", json={"obj": {"x": 10}})
    assert response.json()["data"] == {"obj": {"x": 10}}


async def test_patch_of_a_missing_document_is_404_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    """PATCH never creates: a missing document is 404 not_found and the feed stays empty."""
    response = await client.patch(f"{DOCS}/a", json={"t": 1})
    assert response.status_code == 404
    assert response.json()["type"] == "not_found"
    assert await feed(client) == []


async def test_delete_leaves_a_tombstone_in_the_feed(client: httpx.AsyncClient) -> None:
    """DELETE answers the tombstone, GET then 404s and the feed carries the deletion."""
    await client.put(f"{DOCS}/a", json={"t": 1})
    response = await client.delete(f"{DOCS}/a")
    assert response.status_code == 200
    assert response.json()["deleted"] is True
    assert response.json()["data"] is None
    assert (await client.get(f"{DOCS}/a")).status_code == 404
    changes = await feed(client)
    assert [(c["id"], c["op"]) for c in changes] == [("a", "set"), ("a", "delete")]
    assert changes[-1]["deleted"] is True
    assert changes[-1]["data"] is None


async def test_second_delete_is_404(client: httpx.AsyncClient) -> None:
    """Deleting a tombstone again is 404 and adds nothing to the feed."""
    await client.put(f"{DOCS}/a", json={"t": 1})
    await client.delete(f"{DOCS}/a")
    before = await feed(client)
    response = await client.delete(f"{DOCS}/a")
    assert response.status_code == 404
    assert response.json()["type"] == "not_found"
    assert await feed(client) == before


async def test_retried_put_with_idempotency_key_is_a_replay(client: httpx.AsyncClient) -> None:
    """A PUT retried with the same Idempotency-Key replays the first result; one change in all."""
    headers = {"Idempotency-Key": "put-a-1"}
    first = await client.put(f"{DOCS}/a", json={"t": 1}, headers=headers)
    retry = await client.put(f"{DOCS}/a", json={"t": 1}, headers=headers)

    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["seq"] == first.json()["seq"]
    assert retry.json()["version"] == first.json()["version"]
    assert retry.headers["etag"] == first.headers["etag"]
    changes = await feed(client)
    assert [c["id"] for c in changes] == ["a"]


async def test_idempotency_key_replay_ignores_a_changed_body(client: httpx.AsyncClient) -> None:
    """A retry under a used Idempotency-Key has no effect even if its body differs."""
    headers = {"Idempotency-Key": "put-a-1"}
    await client.put(f"{DOCS}/a", json={"t": 1}, headers=headers)
    retry = await client.put(f"{DOCS}/a", json={"t": 2}, headers=headers)
    assert retry.headers["idempotent-replayed"] == "true"
    assert (await client.get(f"{DOCS}/a")).json()["data"] == {"t": 1}
    assert len(await feed(client)) == 1


async def test_writes_without_idempotency_key_each_apply(client: httpx.AsyncClient) -> None:
    """Without Idempotency-Key two identical PUTs are two changes."""
    await client.put(f"{DOCS}/a", json={"t": 1})
    await client.put(f"{DOCS}/a", json={"t": 1})
    assert [c["seq"] for c in await feed(client)] == [1, 2]


# -- queries ------------------------------------------------------------------------------------

OPERATOR_DOCS: dict[str, dict[str, Any]] = {
    "a": {"n": 1, "s": "apple", "flag": True},
    "b": {"n": 2, "s": "banana", "flag": False},
    "c": {"n": 3, "s": "cherry", "opt": 1},
    "d": {"n": 2.5, "s": "date", "opt": None},
}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (["n:eq:2"], ["b"]),
        (["n:ne:2"], ["a", "c", "d"]),
        (["n:lt:2.5"], ["a", "b"]),
        (["n:lte:2.5"], ["a", "b", "d"]),
        (["n:gt:2"], ["c", "d"]),
        (["n:gte:2"], ["b", "c", "d"]),
        (["s:eq:banana"], ["b"]),
        (['s:eq:"banana"'], ["b"]),
        (["s:gt:b"], ["b", "c", "d"]),
        (["s:lte:cherry"], ["a", "b", "c"]),
        (["flag:eq:true"], ["a"]),
        (["flag:eq:false"], ["b"]),
        (["opt:eq:null"], ["a", "b", "d"]),
        (["opt:ne:null"], ["c"]),
        (["n:gte:2", "s:lt:d"], ["b", "c"]),
        (["n:gt:100"], []),
    ],
    ids=lambda value: "&".join(value) if isinstance(value, list) else None,
)
async def test_where_operators_select_matching_documents(
    client: httpx.AsyncClient, where: list[str], expected: list[str]
) -> None:
    """Each operator keeps exactly the documents it should (null: missing or null fields)."""
    for doc_id, data in OPERATOR_DOCS.items():
        await put(client, f"{DOCS}/{doc_id}", data)
    assert await query_ids(client, DOCS, where=where) == expected


async def test_filter_on_an_integer_past_64_bits_matches(client: httpx.AsyncClient) -> None:
    """Integers up to 2**64-1 are valid JSON numbers and can be filtered on."""
    await put(client, f"{DOCS}/big", {"n": 18446744073709551615})
    await put(client, f"{DOCS}/small", {"n": 1})
    assert await query_ids(client, DOCS, where="n:eq:18446744073709551615") == ["big"]
    assert await query_ids(client, DOCS, where="n:gt:9223372036854775807") == ["big"]
    assert await query_ids(client, DOCS, where="n:lt:18446744073709551615") == ["small"]


async def test_order_ascending_and_descending(client: httpx.AsyncClient) -> None:
    """order=FIELD sorts ascending and order=-FIELD descending."""
    for doc_id, data in OPERATOR_DOCS.items():
        await put(client, f"{DOCS}/{doc_id}", data)
    assert await query_ids(client, DOCS, order="n") == ["a", "b", "d", "c"]
    assert await query_ids(client, DOCS, order="-n") == ["c", "d", "b", "a"]
    assert await query_ids(client, DOCS, order="s") == ["a", "b", "c", "d"]
    assert await query_ids(client, DOCS, order="-s") == ["d", "c", "b", "a"]


async def test_without_order_documents_come_by_id(client: httpx.AsyncClient) -> None:
    """With no order the documents are sorted by id."""
    for doc_id in ["m", "b", "z", "a"]:
        await put(client, f"{DOCS}/{doc_id}", {"t": 1})
    assert await query_ids(client, DOCS) == ["a", "b", "m", "z"]


async def test_limit_caps_the_page(client: httpx.AsyncClient) -> None:
    """limit=N returns the first N documents and a next token."""
    for doc_id in ["a", "b", "c"]:
        await put(client, f"{DOCS}/{doc_id}", {"t": 1})
    response = await client.get(DOCS, params={"limit": 2})
    assert [d["id"] for d in response.json()["docs"]] == ["a", "b"]
    assert response.json()["next"] is not None
    exact = await client.get(DOCS, params={"limit": 3})
    assert len(exact.json()["docs"]) == 3
    assert exact.json()["next"] is None


async def test_query_returns_document_envelopes(client: httpx.AsyncClient) -> None:
    """Query results are the same envelopes GET returns."""
    await put(client, f"{DOCS}/a", {"t": 1})
    [doc] = (await client.get(DOCS)).json()["docs"]
    assert doc == (await client.get(f"{DOCS}/a")).json()


def _rank(i: int) -> int | None:
    """Shared order values, with every seventh document lacking the field."""
    return None if i % 7 == 3 else i % 5


def _expected_order(
    docs: dict[str, dict[str, Any]], field_name: str | None, descending: bool
) -> list[str]:
    """Ids in the order the API promises: value (missing first ascending), then id."""
    if field_name is None:
        ids = sorted(docs)
    else:
        # Ascending: documents without the field first, then by value, ties by id.
        ids = sorted(
            docs,
            key=lambda i: (
                field_name in docs[i],
                docs[i].get(field_name, 0),
                i,
            ),
        )
    return list(reversed(ids)) if descending else ids


PAGINATION_ORDERS = [None, "rank", "-rank", "score", "-score"]


@pytest.mark.parametrize("order", PAGINATION_ORDERS, ids=str)
async def test_keyset_pages_visit_every_document_once_in_order(
    client: httpx.AsyncClient, order: str | None
) -> None:
    """Walking all pages of 57 documents 10 at a time sees each exactly once, in order."""
    docs: dict[str, dict[str, Any]] = {}
    for i in range(57):
        data: dict[str, Any] = {"score": (i * 37) % 101 / 4}
        if _rank(i) is not None:
            data["rank"] = _rank(i)
        docs[f"doc{i}"] = data
        await put(client, f"{DOCS}/doc{i}", data)

    params = {} if order is None else {"order": order}
    walked = await walk(client, DOCS, 10, **params)

    ids = [doc["id"] for doc in walked]
    assert len(ids) == len(set(ids)) == 57
    field_name = None if order is None else order.removeprefix("-")
    descending = order is not None and order.startswith("-")
    assert ids == _expected_order(docs, field_name, descending)


@pytest.mark.parametrize("order", ["rank", "-rank"])
async def test_keyset_pages_with_a_filter(client: httpx.AsyncClient, order: str) -> None:
    """Pagination respects filters: every matching document once, nothing else."""
    docs: dict[str, dict[str, Any]] = {}
    for i in range(57):
        data: dict[str, Any] = {"i": i}
        if _rank(i) is not None:
            data["rank"] = _rank(i)
        docs[f"doc{i}"] = data
        await put(client, f"{DOCS}/doc{i}", data)

    walked = await walk(client, DOCS, 4, order=order, where="i:gte:20")

    matching = {k: v for k, v in docs.items() if v["i"] >= 20}
    expected = _expected_order(matching, "rank", order.startswith("-"))
    assert [doc["id"] for doc in walked] == expected


async def test_keyset_pages_when_all_documents_share_the_value(
    client: httpx.AsyncClient,
) -> None:
    """Ties on the order value are broken by id, so pages neither repeat nor skip."""
    for i in range(23):
        await put(client, f"{DOCS}/doc{i}", {"rank": 1})
    walked = await walk(client, DOCS, 5, order="rank")
    assert [d["id"] for d in walked] == sorted(f"doc{i}" for i in range(23))


async def test_keyset_pages_when_no_document_has_the_field(client: httpx.AsyncClient) -> None:
    """Ordering by a field nobody has pages by id, descending too."""
    for i in range(12):
        await put(client, f"{DOCS}/doc{i}", {"t": i})
    ids = sorted(f"doc{i}" for i in range(12))
    assert [d["id"] for d in await walk(client, DOCS, 5, order="missing")] == ids
    assert [d["id"] for d in await walk(client, DOCS, 5, order="-missing")] == ids[::-1]


@pytest.mark.parametrize("order", ["value", "-value"])
async def test_keyset_pages_over_mixed_json_values(client: httpx.AsyncClient, order: str) -> None:
    """Order values of every JSON type (arrays, objects, big integers) still page completely."""
    values: list[Any] = [
        None,
        False,
        True,
        -3,
        0,
        2.5,
        18446744073709551615,
        "",
        "b",
        "é",
        [1, 2],
        [],
        {"k": "v"},
        {},
    ]
    for i, value in enumerate(values):
        await put(client, f"{DOCS}/doc{i}", {"value": value})
    await put(client, f"{DOCS}/nofield", {"other": 1})

    walked = await walk(client, DOCS, 2, order=order)

    ids = [doc["id"] for doc in walked]
    assert sorted(ids) == sorted([*(f"doc{i}" for i in range(len(values))), "nofield"])
    assert len(ids) == len(set(ids))
    single_page = await query_ids(client, DOCS, order=order, limit=100)
    assert ids == single_page


async def test_deleted_documents_never_appear_in_queries(client: httpx.AsyncClient) -> None:
    """Tombstones are left out of filters, orders and every page."""
    for i in range(30):
        await put(client, f"{DOCS}/doc{i}", {"rank": i % 3, "i": i})
    deleted = {f"doc{i}" for i in range(0, 30, 4)}
    for doc_id in deleted:
        assert (await client.delete(f"{DOCS}/{doc_id}")).status_code == 200

    live = {f"doc{i}" for i in range(30)} - deleted
    walked = await walk(client, DOCS, 7, order="-rank")
    assert {d["id"] for d in walked} == live
    assert len(walked) == len(live)
    assert all(d["deleted"] is False for d in walked)
    filtered = await query_ids(client, DOCS, where="rank:eq:0", limit=100)
    assert set(filtered) == {d for d in live if int(d.removeprefix("doc")) % 3 == 0}


INDEXED_TOML = """
[collections.indexed]
indexes = ["rank", "done", "score"]
"""


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"where": "done:eq:true"},
        {"where": ["rank:gte:2", "done:eq:false"]},
        {"where": "rank:eq:null"},
        {"order": "rank"},
        {"order": "-score", "where": "rank:lt:3"},
        {"order": "-rank", "where": "score:gt:10"},
    ],
    ids=lambda params: json.dumps(params, sort_keys=True),
)
async def test_indexed_collection_answers_like_an_unindexed_one(
    make_client: MakeClient, params: dict[str, Any]
) -> None:
    """Indexes change speed only: the same documents come back in the same pages."""
    client: httpx.AsyncClient = await make_client(INDEXED_TOML)
    for collection in ("indexed", "plain"):
        for i in range(41):
            data: dict[str, Any] = {"done": i % 3 == 0, "score": (i * 13) % 17}
            if _rank(i) is not None:
                data["rank"] = _rank(i)
            await put(client, f"/v1/collections/{collection}/docs/doc{i}", data)

    def strip(docs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        return [(doc["id"], doc["data"]) for doc in docs]

    indexed = await walk(client, "/v1/collections/indexed/docs", 6, **params)
    plain = await walk(client, "/v1/collections/plain/docs", 6, **params)
    assert indexed, "the query should match something"
    assert strip(indexed) == strip(plain)


# -- conflict policy ----------------------------------------------------------------------------

DOCUMENT_LEVEL_TOML = """
[collections.whole]
conflict = "document"
"""


async def test_document_policy_records_a_patch_as_a_set(make_client: MakeClient) -> None:
    """Under conflict="document" a PATCH becomes a whole-document set in the feed and state."""
    client: httpx.AsyncClient = await make_client(DOCUMENT_LEVEL_TOML)
    path = "/v1/collections/whole/docs/a"
    await client.put(path, json={"a": 1, "b": 2})
    response = await client.patch(path, json={"b": 3, "a": None})
    assert response.status_code == 200
    assert response.json()["data"] == {"b": 3}

    pulled = await client.get("/v1/sync/pull", params={"include_state": "true"})
    changes = pulled.json()["changes"]
    assert [c["op"] for c in changes] == ["set", "set"]
    assert changes[-1]["state"]["s"] == response.json()["hlc"]


async def test_field_policy_records_a_patch_as_a_patch(client: httpx.AsyncClient) -> None:
    """Under the default field policy a PATCH stays a patch in the feed."""
    await client.put(f"{DOCS}/a", json={"a": 1})
    await client.patch(f"{DOCS}/a", json={"b": 2})
    assert [c["op"] for c in await feed(client)] == ["set", "patch"]


@pytest.mark.parametrize(("policy", "expected_b"), [("field", 5), ("document", 1)])
async def test_conflict_policy_decides_a_late_older_patch(
    make_client: MakeClient, policy: str, expected_b: int
) -> None:
    """An older patch to another field survives under field LWW and loses under document LWW."""
    client: httpx.AsyncClient = await make_client(f'[collections.c]\nconflict = "{policy}"\n')
    base = int(time.time() * 1000)

    def mutation(mid: str, op: str, data: dict[str, Any], offset: int) -> dict[str, Any]:
        hlc = f"{base + offset:013d}-0000-dev{mid}"
        return {
            "mutation_id": mid,
            "collection": "c",
            "id": "x",
            "op": op,
            "data": data,
            "hlc": hlc,
        }

    mutations = [
        mutation("m1", "set", {"a": 1, "b": 1}, -3000),
        mutation("m2", "patch", {"a": 2}, -1000),
        mutation("m3", "patch", {"b": 5}, -2000),
    ]
    response = await client.post("/v1/sync/push", json={"mutations": mutations})
    assert [r["status"] for r in response.json()["results"]] == ["applied"] * 3

    data = (await client.get("/v1/collections/c/docs/x")).json()["data"]
    assert data == {"a": 2, "b": expected_b}
