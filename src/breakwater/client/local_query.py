"""Queries over the local view, with the server's semantics (docs/protocol.md#queries).

Filters and ordering use SQLite's ``json_extract`` exactly as the embedded server store does, so
a query answers the same on the device as on a node holding the same documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from breakwater.core.errors import ValidationError
from breakwater.core.mutation import check_collection
from breakwater.core.query import FIELD_PATTERN, OPERATORS, Filter, Scalar, parse_filter

WhereClause = str | tuple[str, str, Scalar]
Where = Mapping[str, Scalar] | Iterable[WhereClause] | None


@dataclass(frozen=True, slots=True)
class LocalQuery:
    """A validated query on one collection of the local view."""

    collection: str
    filters: tuple[Filter, ...] = ()
    order: str | None = None
    descending: bool = False
    limit: int | None = None


def _field(name: str) -> str:
    if not FIELD_PATTERN.fullmatch(name):
        raise ValidationError(f"{name!r} is not a queryable field name", field="where")
    return name


def _filter(clause: WhereClause) -> Filter:
    if isinstance(clause, str):
        return parse_filter(clause)
    name, op, value = clause
    if op not in OPERATORS:
        raise ValidationError(f"operator {op!r} is not one of {sorted(OPERATORS)}", field="where")
    if value is None and op not in ("eq", "ne"):
        raise ValidationError("null can only be compared with eq or ne", field="where")
    if isinstance(value, dict | list):
        raise ValidationError("filter values must be strings, numbers, booleans or null")
    return Filter(_field(name), op, value)


def build_query(
    collection: str, where: Where = None, order_by: str | None = None, limit: int | None = None
) -> LocalQuery:
    """Validate a query: ``where`` is ``{field: value}`` (equality) or clauses, each
    ``"field:op:value"`` or ``(field, op, value)``; ``order_by`` is ``field`` or ``-field``."""
    if isinstance(where, Mapping):
        clauses: list[WhereClause] = [(name, "eq", value) for name, value in where.items()]
    else:
        clauses = list(where or ())
    if limit is not None and limit < 1:
        raise ValidationError("limit must be at least 1", field="limit")
    descending = bool(order_by and order_by.startswith("-"))
    order = _field(order_by.removeprefix("-")) if order_by else None
    return LocalQuery(
        check_collection(collection), tuple(_filter(c) for c in clauses), order, descending, limit
    )


def _bind(value: Scalar) -> Scalar:
    """``value`` as json_extract yields it: 1/0 for booleans."""
    return int(value) if isinstance(value, bool) else value


def query_sql(query: LocalQuery) -> tuple[str, list[Any]]:
    """SQL over the ``docs`` table (field names are validated, so inlining them is safe)."""
    clauses = ["collection = ?", "data IS NOT NULL"]
    params: list[Any] = [query.collection]
    for item in query.filters:
        expr = f"json_extract(data, '$.{item.field}')"
        if item.value is None:
            clauses.append(f"{expr} IS {'NOT ' if item.op == 'ne' else ''}NULL")
        else:
            clauses.append(f"{expr} {OPERATORS[item.op]} ?")
            params.append(_bind(item.value))
    direction = "DESC" if query.descending else "ASC"
    order = f"id {direction}"
    if query.order is not None:
        order = f"json_extract(data, '$.{query.order}') {direction}, {order}"
    sql = f"SELECT id, data, hlc, pending FROM docs WHERE {' AND '.join(clauses)} ORDER BY {order}"
    if query.limit is not None:
        sql += f" LIMIT {int(query.limit)}"
    return sql, params
