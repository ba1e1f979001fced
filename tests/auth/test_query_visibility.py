"""Queries under read rules behave exactly as if the caller's unreadable documents did not exist.

Each example writes random documents of two users into a collection, and the same documents
minus those Alice may not read into its ``_oracle`` twin on the same node (so uids, ids and
values match). Every random query Alice runs, paged through every ``next``, must answer alike
on both: the same documents, the same tokens, the same number of pages. Two rules: an owner rule
the node turns into a store filter, and a rule it evaluates row by row in the scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.config import Config, load_config
from breakwater.server.app import create_app
from tests.auth.conftest import FAST_HASH, User, sign_up
from tests.storage.backends import BACKENDS, drop_schema, postgres_url

OWNER_RULE = "doc.owner == auth.uid"
SHARED_RULE = "auth.uid == doc.owner || (has(doc.public) && doc.public == true)"
COLLECTIONS = {"mine": OWNER_RULE, "shared": SHARED_RULE}


def _config_toml() -> str:
    tables = [
        f'[collections.{name}]\nowner = "owner"\n'
        f'rules = {{ read = "{rule}", write = "auth.uid == doc.owner" }}\n'
        for base, rule in COLLECTIONS.items()
        for name in (base, f"{base}_oracle")
    ]
    return FAST_HASH + 'mode = "enforce"\n\n' + "\n".join(tables)


@dataclass
class Setup:
    """One node, Alice and Bob, and the loop every example runs on."""

    run: Callable[[Any], Any]
    http: httpx.AsyncClient
    alice: User
    bob: User
    examples: Iterator[int]


@pytest.fixture(params=BACKENDS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    """A node over each backend, shared by the examples of one test (each writes fresh ids and
    deletes them after)."""
    toml = tmp_path / "breakwater.toml"
    toml.write_text(_config_toml())
    config: Config = load_config(toml, env={}, overrides={"data": tmp_path / "data"})
    schema = None
    if request.param == "postgres":
        url, schema = postgres_url()
        config = load_config(toml, env={}, overrides={"data": tmp_path / "data", "store": url})
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()

        async def start() -> Setup:
            app = create_app(config)
            await stack.enter_async_context(app.router.lifespan_context(app))
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
            )
            alice = await sign_up(http, "alice@example.com")
            bob = await sign_up(http, "bob@example.com")
            return Setup(runner.run, http, alice, bob, itertools.count())

        yield runner.run(start())
        runner.run(stack.aclose())
        if schema is not None:
            runner.run(drop_schema(schema))


@dataclass(frozen=True)
class Doc:
    """A random document: its owner (Alice or Bob), whether it is public, its other fields."""

    alices: bool
    public: bool
    fields: dict[str, Any]


VALUES = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([-1.5, 0.5, 2.0]),
    st.text(alphabet="abAB", max_size=2),
    st.booleans(),
    st.none(),
)
FIELDS = st.dictionaries(st.sampled_from(["n", "s"]), VALUES, max_size=2)
DOCS = st.lists(st.builds(Doc, st.booleans(), st.booleans(), FIELDS), max_size=8)
FILTER = st.tuples(
    st.sampled_from(["n", "s"]), st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"]), VALUES
).filter(lambda f: f[2] is not None or f[1] in ("eq", "ne"))
QUERY = st.fixed_dictionaries(
    {
        "where": st.lists(FILTER, max_size=2),
        "order": st.sampled_from([None, "n", "-n", "s", "-s", "public"]),
        "limit": st.integers(1, 4),
    }
)


def _readable_by_alice(collection: str, doc: Doc) -> bool:
    return doc.alices or (COLLECTIONS[collection] == SHARED_RULE and doc.public)


async def _push(setup: Setup, user: User, mutations: list[dict[str, Any]]) -> None:
    if mutations:
        response = await setup.http.post(
            "/v1/sync/push", json={"mutations": mutations}, headers=user.headers
        )
        assert response.status_code == 200, response.text
        assert {r["status"] for r in response.json()["results"]} == {"applied"}, response.text


async def _write(setup: Setup, collection: str, docs: list[tuple[str, Doc]], op: str) -> None:
    for user, mine in ((setup.alice, True), (setup.bob, False)):
        await _push(
            setup,
            user,
            [
                {
                    "mutation_id": f"{op}-{collection}-{doc_id}",
                    "collection": collection,
                    "id": doc_id,
                    "op": op,
                    "data": {**doc.fields, "public": doc.public} if op == "set" else None,
                }
                for doc_id, doc in docs
                if doc.alices == mine
            ],
        )


async def _walk(setup: Setup, collection: str, query: dict[str, Any]) -> list[Any]:
    """Every page of ``query`` as Alice sees it: its ids and data, and its ``next`` token."""
    params: dict[str, Any] = {
        "where": [f"{f}:{op}:{json.dumps(value)}" for f, op, value in query["where"]],
        "limit": query["limit"],
    }
    if query["order"] is not None:
        params["order"] = query["order"]
    pages = []
    for _ in range(20):
        response = await setup.http.get(
            f"/v1/collections/{collection}/docs", params=params, headers=setup.alice.headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(([(d["id"], d["data"]) for d in body["docs"]], body["next"]))
        if body["next"] is None:
            return pages
        params["after"] = body["next"]
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("collection", sorted(COLLECTIONS))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(docs=DOCS, queries=st.lists(QUERY, min_size=1, max_size=3))
def test_queries_answer_as_if_unreadable_documents_did_not_exist(
    setup: Setup, collection: str, docs: list[Doc], queries: list[dict[str, Any]]
) -> None:
    """Alice's paged results (documents, tokens, page count) equal those over her readable ones."""
    example = next(setup.examples)
    named = [(f"e{example}-{index}", doc) for index, doc in enumerate(docs)]
    oracle = f"{collection}_oracle"
    visible = [(doc_id, doc) for doc_id, doc in named if _readable_by_alice(collection, doc)]

    async def check() -> None:
        await _write(setup, collection, named, "set")
        await _write(setup, oracle, visible, "set")
        try:
            for query in queries:
                assert await _walk(setup, collection, query) == await _walk(setup, oracle, query)
        finally:
            await _write(setup, collection, named, "delete")
            await _write(setup, oracle, visible, "delete")

    setup.run(check())
