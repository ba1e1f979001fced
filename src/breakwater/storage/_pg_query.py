"""Document queries in PostgreSQL, comparing JSON values exactly as the SQLite store does.

SQLite compares ``json_extract`` results by type first: NULL (missing or JSON null), then
numbers (booleans as 1/0), then text (strings, and arrays and objects as their compact JSON
text), byte-wise. Here a field becomes the sort key ``(rank, number, text)`` with that order, and
filters, orders and keyset pages compare whole keys, so both backends return the same documents in
the same pages. Numbers compare as double precision (integers past 2**53 lose exactness).

``data`` is kept as the JSON text the engine wrote (``json``, not ``jsonb``, keeps key order and
spacing, so an array's or object's text is what the page token carries). PostgreSQL text cannot
hold U+0000, and its JSON functions refuse a document that escapes it, so keys read U+0000 as
U+2400 (a NUL only orders differently; nothing fails).
"""

from __future__ import annotations

from typing import Any

from breakwater.core.mutation import check_collection
from breakwater.core.query import Query, Scalar
from breakwater.storage._rows import DOC_COLUMNS

_NUL_ESCAPE = "\\u0000"
_NUL_STAND_IN_ESCAPE = "\\u2400"
_COMPARE = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def key_sql(field: str) -> tuple[str, str, str]:
    """The ``(rank, number, text)`` expressions of top-level ``field`` (a validated name)."""
    doc = f"replace(data, '{_NUL_ESCAPE}', '{_NUL_STAND_IN_ESCAPE}')::json"
    value = f"({doc} -> '{field}')"
    kind = f"json_typeof{value}"
    rank = (
        f"(CASE {kind} WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2"
        " WHEN 'array' THEN 2 WHEN 'object' THEN 2 ELSE 0 END)"
    )
    number = (
        f"(CASE {kind} WHEN 'number' THEN ({doc} ->> '{field}')::float8"
        f" WHEN 'boolean' THEN (CASE WHEN {value}::text = 'true' THEN 1.0 ELSE 0.0 END)::float8"
        " ELSE 0.0::float8 END)"
    )
    text = (
        f"(CASE {kind} WHEN 'string' THEN {doc} ->> '{field}'"
        f" WHEN 'array' THEN {value}::text WHEN 'object' THEN {value}::text"
        " ELSE '' END COLLATE \"C\")"
    )
    return rank, number, text


def key_of(value: Scalar) -> tuple[int, float, str]:
    """The sort key of a bound value, matching :func:`key_sql`."""
    if value is None:
        return 0, 0.0, ""
    if isinstance(value, bool | int | float):
        return 1, float(value), ""
    return 2, 0.0, value.replace(_NUL_ESCAPE, _NUL_STAND_IN_ESCAPE).replace("\x00", "\u2400")


def index_sql(collection: str, field: str) -> str:
    """The partial expression index that serves queries on ``field`` of ``collection``."""
    rank, number, text = key_sql(field)
    return (
        f"CREATE INDEX IF NOT EXISTS bw_{collection}__{field} ON docs"
        f" ({rank}, {number}, {text}, id) WHERE collection = '{collection}' AND NOT deleted"
    )


class _Params:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"

    def key(self, value: Scalar) -> list[str]:
        rank, number, text = key_of(value)
        return [self.add(rank, "int"), self.add(number, "float8"), self.add(text, "text")]


def query_sql(query: Query, limited: bool = True) -> tuple[str, list[Any]]:
    """The SELECT of ``query`` in its order and its parameters: one row more than the page, or
    every row (``limited=False``) for a scan that decides row by row which ones count."""
    # The collection is inlined (validated name) so that PostgreSQL matches its partial index.
    clauses = [f"collection = '{check_collection(query.collection)}'", "NOT deleted"]
    params = _Params()
    for item in query.filters:
        rank, number, text = key_sql(item.field)
        if item.value is None:
            clauses.append(f"{rank} {'<>' if item.op == 'ne' else '='} 0")
        else:
            # Like SQL on SQLite: a missing field or JSON null matches no comparison.
            clauses.append(
                f"{rank} <> 0 AND ({rank}, {number}, {text})"
                f" {_COMPARE[item.op]} ({', '.join(params.key(item.value))})"
            )
    direction = "DESC" if query.descending else "ASC"
    compare = "<" if query.descending else ">"
    if query.order is None:
        if query.after is not None:
            clauses.append(f"id {compare} {params.add(query.after[1], 'text')}")
        order_sql = f"id {direction}"
    else:
        rank, number, text = key_sql(query.order)
        if query.after is not None:
            value, after_id = query.after
            bound = [*params.key(value), params.add(after_id, "text")]
            clauses.append(f"({rank}, {number}, {text}, id) {compare} ({', '.join(bound)})")
        order_sql = ", ".join(f"{expr} {direction}" for expr in (rank, number, text, "id"))
    sql = (
        f"SELECT {DOC_COLUMNS} FROM docs WHERE {' AND '.join(clauses)}"
        f" ORDER BY {order_sql}{f' LIMIT {int(query.limit) + 1}' if limited else ''}"
    )
    return sql, params.values
