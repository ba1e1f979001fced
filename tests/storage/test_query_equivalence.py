"""Random documents and random queries: PostgreSQL answers exactly as SQLite does.

The PostgreSQL store emulates SQLite's comparison of ``json_extract`` values (by type, then by
value; see storage/_pg_query.py). Seeded random cases over every JSON type check that filters,
orders and keyset pages select and order the same documents on both backends.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from breakwater.core.mutation import Mutation
from breakwater.core.query import OPERATORS, Filter, Query, decode_page_token
from breakwater.storage.base import Store
from tests.storage.backends import build_store, drop_schema, engine, postgres_url, sqlite_url

ALPHABET = 'aAbZ09 _-é€😀"\\'


def random_value(rnd: random.Random, depth: int = 0) -> Any:
    """A JSON value of any type (no U+0000, integers within 2**53: both compare them exactly)."""
    kind = rnd.choice(["null", "bool", "int", "float", "str", "str", "array", "object"])
    if kind == "null":
        return None
    if kind == "bool":
        return rnd.random() < 0.5
    if kind == "int":
        return rnd.choice([0, 1, -1, 2, 3, rnd.randint(-(2**53), 2**53)])
    if kind == "float":
        return rnd.choice([0.5, -2.5, 1.0, 3.25, rnd.uniform(-1e6, 1e6)])
    if kind == "str" or depth > 1:
        return "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 4)))
    if kind == "array":
        return [random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 2))]
    return {f"k{i}": random_value(rnd, depth + 1) for i in range(rnd.randint(0, 2))}


def random_scalar(rnd: random.Random) -> Any:
    """A filter value: null, boolean, number or string."""
    value = random_value(rnd)
    return value if not isinstance(value, list | dict) else "".join(rnd.choice(ALPHABET))


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """An open SQLite store and an open PostgreSQL store."""
    url, schema = postgres_url(pool_size="2")
    opened = [build_store(sqlite_url(tmp_path), engine()), build_store(url, engine())]
    for store in opened:
        await store.open()
    yield opened[0], opened[1]
    for store in opened:
        await store.aclose()
    await drop_schema(schema)


async def walk(store: Store, query: Query) -> list[str]:
    """Every id of ``query``, page by page."""
    ids: list[str] = []
    after = None
    for _ in range(200):
        page = await store.query(dataclasses.replace(query, after=after))
        ids += [doc.doc_id for doc in page.docs]
        if page.next_token is None:
            return ids
        after = decode_page_token(page.next_token)
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("seed", range(3))
async def test_random_queries_answer_alike_on_both_backends(
    stores: tuple[Store, Store], seed: int
) -> None:
    """Filters, orders and keyset pages over random JSON values agree on SQLite and PostgreSQL."""
    rnd = random.Random(seed)
    mutations = []
    for i in range(40):
        data = {"v": random_value(rnd), "w": random_value(rnd)} if i % 9 else {"other": i}
        mutations.append(Mutation(f"m{i}", "things", f"d{i:02d}", "set", data))
    for store in stores:
        await store.apply(mutations)
    for _ in range(60):
        filters = []
        for _ in range(rnd.randint(0, 2)):
            op = rnd.choice(sorted(OPERATORS))
            value = random_scalar(rnd)
            if value is None and op not in ("eq", "ne"):
                value = 0
            filters.append(Filter(rnd.choice(["v", "w"]), op, value))
        order = rnd.choice([None, "v", "w", "missing"])
        query = Query("things", tuple(filters), order, rnd.random() < 0.5, limit=rnd.randint(1, 7))
        sqlite_ids, postgres_ids = [await walk(store, query) for store in stores]
        assert postgres_ids == sqlite_ids, query
