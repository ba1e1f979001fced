"""Issue 16 item 2 through the HTTP API: a look-alike character in any validated field is a 4xx
problem and changes nothing; the frozen-document attack of the issue no longer works."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unicode_junk import lookalike_in

PUSH = "/v1/sync/push"
PULL = "/v1/sync/pull"
DOCS = "/v1/collections/todos/docs"
STAMP = "1700000000000-0042-devA"
Client = httpx.AsyncClient
Request = Callable[[Client, str], Awaitable[httpx.Response]]


@pytest.fixture
async def node(make_client: Callable[..., Any]) -> Client:
    """A node holding one document, todos/t1."""
    client: Client = await make_client()
    assert (await client.put(f"{DOCS}/t1", json={"title": "one"})).status_code == 201
    return client


def _mutation(**fields: Any) -> dict[str, Any]:
    base = {"mutation_id": "m-1", "collection": "todos", "id": "t1", "op": "set"}
    return {**base, "data": {"title": "changed"}, **fields}


def _push(field: str) -> Request:
    def send(client: Client, value: str) -> Awaitable[httpx.Response]:
        if field == "client_id":
            body: dict[str, Any] = {"client_id": value, "mutations": [_mutation()]}
        else:
            body = {"mutations": [_mutation(**{field: value})]}
        return client.post(PUSH, json=body)

    return send


def _cursor(client: Client, origin: str) -> Awaitable[httpx.Response]:
    raw = ('{"' + origin + '":1}').encode()
    return client.get(PULL, params={"cursor": "c1." + base64.urlsafe_b64encode(raw).decode()})


# (what is sent, a valid value of it, whether lone surrogates can be sent in that place)
FIELDS: dict[str, tuple[Request, str, bool]] = {
    "push hlc": (_push("hlc"), STAMP, False),
    "push mutation_id": (_push("mutation_id"), "m-1", False),
    "push collection": (_push("collection"), "todos", False),
    "push id": (_push("id"), "t1", False),
    "push client_id": (_push("client_id"), "phone-1", False),
    "push if_match": (_push("if_match"), "0123456789abcdef0123", False),
    "put collection": (
        lambda c, v: c.put(f"/v1/collections/{quote(v)}/docs/t1", json={"a": 1}),
        "todos",
        True,
    ),
    "put id": (lambda c, v: c.put(f"{DOCS}/{quote(v)}", json={"a": 1}), "t1", True),
    "pull cursor origin": (_cursor, "r1", False),
    "pull collections": (lambda c, v: c.get(PULL, params={"collections": v}), "todos", True),
    "pull limit": (lambda c, v: c.get(PULL, params={"limit": v}), "10", True),
    "pull wait": (lambda c, v: c.get(PULL, params={"wait": v}), "0.5", True),
    "query where field": (lambda c, v: c.get(DOCS, params={"where": f"{v}:eq:1"}), "n", True),
    "query order": (lambda c, v: c.get(DOCS, params={"order": v}), "title", True),
    "query limit": (lambda c, v: c.get(DOCS, params={"limit": v}), "10", True),
    "signup email": (
        lambda c, v: c.post("/v1/auth/signup", json={"email": v, "password": "p" * 12}),
        "a@example.com",
        False,
    ),
}


def _url_safe(text: str) -> str:
    """Query values go out as UTF-8; a lone surrogate is sent as its surrogate-escaped bytes."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


async def _snapshot(client: Client) -> Any:
    response = await client.get(PULL, params={"include_state": "true", "limit": 1000})
    assert response.status_code == 200
    return response.json()["changes"], response.json()["stable"]


@pytest.mark.parametrize("name", sorted(FIELDS))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_a_lookalike_character_gets_a_problem_and_changes_nothing(
    node: Client, name: str, data: st.DataObject
) -> None:
    """Fullwidth and Arabic-Indic digits, look-alike letters, NBSP, U+2028, combining marks."""
    send, valid, surrogates = FIELDS[name]
    value = data.draw(lookalike_in(valid, surrogates=surrogates))
    before = await _snapshot(node)
    response = await send(node, _url_safe(value) if surrogates else value)
    assert 400 <= response.status_code < 500, (value, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert await _snapshot(node) == before


async def test_a_lone_surrogate_in_a_push_field_is_refused(node: Client) -> None:
    """A surrogate escape (what a fs-decoded name carries) in a JSON string is a 400."""
    before = await _snapshot(node)
    for field in ("hlc", "mutation_id", "id"):
        body = b'{"mutations":[{"mutation_id":"m","collection":"todos","id":"t1","op":"set",'
        body += b'"data":{},"' + field.encode() + b'":"\\udc80"}]}'
        response = await node.post(PUSH, content=body)
        assert response.status_code == 400, response.text
    assert await _snapshot(node) == before


@pytest.mark.parametrize("stamp", ["\u0661000000000000-0000-x", "1\u0660" + "0" * 11 + "-0000-x"])
async def test_an_arabic_indic_stamp_no_longer_freezes_a_document(node: Client, stamp: str) -> None:
    """The attack of issue 16: refused, and the next ordinary write takes effect."""
    frozen = await node.post(PUSH, json={"mutations": [_mutation(mutation_id="evil", hlc=stamp)]})
    assert frozen.status_code == 400
    assert frozen.json()["type"] == "validation_error"

    later = await node.post(PUSH, json={"mutations": [_mutation(mutation_id="m-2")]})
    assert later.json()["results"][0]["status"] == "applied"
    assert (await node.get(f"{DOCS}/t1")).json()["data"] == {"title": "changed"}
