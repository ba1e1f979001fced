"""HTTP semantics found in review: identifiers, conditional requests, idempotency keys, paging."""

from __future__ import annotations

import time

import httpx
import pytest

DOCS = "/v1/collections/todos/docs"


def hlc(offset_ms: int = 0, node: str = "dev") -> str:
    """A stamp near the node's clock."""
    return f"{int(time.time() * 1000) + offset_ms:013d}-0000-{node}"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/collections/todos%0A/docs/a", {"x": 1}),
        ("PUT", f"{DOCS}/a%0A", {"x": 1}),
        ("PUT", f"{DOCS}/a", {"x\n": 1}),
        ("GET", "/v1/sync/pull?collections=todos%0A", None),
    ],
)
async def test_identifiers_ending_in_a_newline_are_refused(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, int] | None
) -> None:
    """A trailing line feed never sneaks past an identifier pattern."""
    response = await client.request(method, path, json=body)
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"


async def test_pushed_mutation_id_ending_in_a_newline_is_refused(client: httpx.AsyncClient) -> None:
    """mutation_id is matched whole."""
    push = {"mutations": [{"mutation_id": "m1\n", "collection": "t", "id": "a", "op": "delete"}]}
    assert (await client.post("/v1/sync/push", json=push)).status_code == 400


async def test_idempotency_key_is_scoped_to_its_document(client: httpx.AsyncClient) -> None:
    """The same key on another document is a new write, not a replay of the first."""
    first = await client.put(f"{DOCS}/a", json={"v": 1}, headers={"Idempotency-Key": "k1"})
    other = await client.put(f"{DOCS}/b", json={"v": 2}, headers={"Idempotency-Key": "k1"})
    assert (first.status_code, other.status_code) == (201, 201)
    assert "idempotent-replayed" not in other.headers
    assert (await client.get(f"{DOCS}/b")).json()["data"] == {"v": 2}


async def test_idempotency_key_replays_the_same_request(client: httpx.AsyncClient) -> None:
    """Retrying a PUT with its key applies nothing and says it replayed."""
    headers = {"Idempotency-Key": "k2"}
    first = await client.put(f"{DOCS}/a", json={"v": 1}, headers=headers)
    again = await client.put(f"{DOCS}/a", json={"v": 1}, headers=headers)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["seq"] == first.json()["seq"]


async def test_if_match_accepts_any_listed_strong_tag(client: httpx.AsyncClient) -> None:
    """If-Match with a list succeeds when one strong tag is current."""
    etag = (await client.put(f"{DOCS}/a", json={"v": 1})).headers["etag"]
    response = await client.put(
        f"{DOCS}/a", json={"v": 2}, headers={"If-Match": f'"{"0" * 20}", {etag}'}
    )
    assert response.status_code == 200


async def test_if_match_never_matches_a_weak_tag(client: httpx.AsyncClient) -> None:
    """Strong comparison: W/"current" is not a match."""
    etag = (await client.put(f"{DOCS}/a", json={"v": 1})).headers["etag"]
    response = await client.put(f"{DOCS}/a", json={"v": 2}, headers={"If-Match": f"W/{etag}"})
    assert response.status_code == 412
    assert (await client.get(f"{DOCS}/a")).json()["data"] == {"v": 1}


@pytest.mark.parametrize("header", ["*", '"{etag}", "{other}"', 'W/"{etag}"'])
async def test_if_none_match_lists_and_star_give_304(
    client: httpx.AsyncClient, header: str
) -> None:
    """If-None-Match matches a listed tag (weakly) or any live document with *."""
    etag = (await client.put(f"{DOCS}/a", json={"v": 1})).headers["etag"].strip('"')
    value = header.format(etag=etag, other="1" * 20)
    assert (await client.get(f"{DOCS}/a", headers={"If-None-Match": value})).status_code == 304


async def test_method_not_allowed_names_the_allowed_methods(client: httpx.AsyncClient) -> None:
    """405 carries an Allow header."""
    response = await client.post(f"{DOCS}/a", json={})
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "GET" in response.headers["allow"]


async def test_paging_by_a_field_holding_objects_walks_every_page(
    client: httpx.AsyncClient,
) -> None:
    """Ordering by a field whose values are objects pages through every document once."""
    for index in range(7):
        await client.put(f"{DOCS}/d{index}", json={"k": {"rank": index % 3}})
    seen: list[str] = []
    after = None
    for _ in range(10):
        params = {"order": "k", "limit": "2", **({"after": after} if after else {})}
        page = (await client.get(DOCS, params=params)).json()
        seen += [doc["id"] for doc in page["docs"]]
        after = page["next"]
        if after is None:
            break
    assert sorted(seen) == [f"d{i}" for i in range(7)]
    assert len(seen) == 7


async def test_conflict_lists_fields_replaced_by_a_newer_set(client: httpx.AsyncClient) -> None:
    """A patch older than the document's set loses every field it wrote, and says so."""
    newer, older = hlc(1000, "b"), hlc(0, "a")
    push = {
        "mutations": [
            {
                "mutation_id": "s1",
                "collection": "todos",
                "id": "c",
                "op": "set",
                "data": {"title": "new"},
                "hlc": newer,
            },
            {
                "mutation_id": "p1",
                "collection": "todos",
                "id": "c",
                "op": "patch",
                "data": {"title": "old", "note": "x"},
                "hlc": older,
            },
        ]
    }
    results = (await client.post("/v1/sync/push", json=push)).json()["results"]
    assert results[1]["conflict"] == ["note", "title"]
    assert (await client.get(f"{DOCS}/c")).json()["data"] == {"title": "new"}
