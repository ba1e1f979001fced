"""Document queries: equality and range filters, one order field, limit and keyset pages.

Wire form (query string): ``where=FIELD:OP:VALUE`` (repeatable; OP is eq, ne, lt, lte, gt, gte;
VALUE is read as JSON when it parses, else as a string), ``order=FIELD`` or ``order=-FIELD``,
``limit=N`` and ``after=TOKEN`` (the ``next`` token of the previous page).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from breakwater.core import codec
from breakwater.core.errors import ValidationError

OPERATORS = {"eq": "=", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", re.ASCII)
Scalar = str | int | float | bool | None
MAX_INT64 = 2**63 - 1
Visible = Callable[[Mapping[str, Any]], bool]
"""Whether the caller may read a document's data: a store applies it inside a query's scan."""


@dataclass(frozen=True, slots=True)
class Filter:
    """``field OP value`` on a top-level field."""

    field: str
    op: str
    value: Scalar


@dataclass(frozen=True, slots=True)
class Query:
    """A validated query over one collection."""

    collection: str
    filters: tuple[Filter, ...] = ()
    order: str | None = None
    descending: bool = False
    limit: int = 100
    after: tuple[Scalar, str] | None = None


def _field(name: str, param: str) -> str:
    if not FIELD_PATTERN.fullmatch(name):
        raise ValidationError(f"{name!r} is not a queryable field name", field=param)
    return name


def _scalar(text: str) -> Scalar:
    try:
        value = codec.loads(text)
    except codec.JSONDecodeError:
        return text
    if isinstance(value, dict | list):
        raise ValidationError("filter values must be strings, numbers, booleans or null")
    return _comparable(value)


def _comparable(value: Scalar) -> Scalar:
    """``value`` as stores compare it: an integer past the signed 64-bit range is a float.

    The JSON codec reads integers up to 2**64 - 1, but SQLite (and PostgreSQL ``bigint``) hold
    only signed 64-bit ones: a document's larger integer is stored and compared as a float, and
    binding the int itself would fail inside the store.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_INT64:
        return float(value)
    return value


def parse_filter(text: str) -> Filter:
    """Parse ``FIELD:OP:VALUE``."""
    parts = text.split(":", 2)
    if len(parts) != 3:
        raise ValidationError(f"where {text!r} must look like FIELD:OP:VALUE", field="where")
    name, op, raw = parts
    if op not in OPERATORS:
        raise ValidationError(f"operator {op!r} is not one of {sorted(OPERATORS)}", field="where")
    value = _scalar(raw)
    if value is None and op not in ("eq", "ne"):
        raise ValidationError("null can only be compared with eq or ne", field="where")
    return Filter(_field(name, "where"), op, value)


def encode_page_token(value: Any, doc_id: str) -> str:
    """The opaque ``after`` token that continues a page after ``(value, doc_id)``.

    ``value`` is the order field of the page's last document and may be any JSON value. An array
    or object is carried as its compact JSON text, which is what a store compares it as (SQLite's
    ``json_extract`` yields that text), so that the token stays a scalar :func:`decode_page_token`
    accepts.
    """
    if isinstance(value, dict | list):
        value = codec.dumps(value).decode()
    raw = codec.dumps([value, doc_id])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(token: str) -> tuple[Scalar, str]:
    """Inverse of :func:`encode_page_token`; a corrupt token is a :class:`ValidationError`."""
    try:
        raw = codec.parse_body(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, ValidationError) as exc:
        raise ValidationError("after is not a page token", field="after") from exc
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[1], str)):
        raise ValidationError("after is not a page token", field="after")
    if isinstance(raw[0], dict | list):
        raise ValidationError("after is not a page token", field="after")
    return _comparable(raw[0]), raw[1]


def parse_query(
    collection: str,
    where: Sequence[str],
    order: str | None,
    limit: int,
    after: str | None,
    max_limit: int,
) -> Query:
    """Build a :class:`Query` from its wire parts."""
    if not 1 <= limit <= max_limit:
        raise ValidationError(f"limit must be between 1 and {max_limit}", field="limit")
    if len(where) > 16:
        raise ValidationError("at most 16 filters", field="where")
    descending = False
    if order is not None:
        descending = order.startswith("-")
        order = _field(order.removeprefix("-"), "order")
    return Query(
        collection=collection,
        filters=tuple(parse_filter(item) for item in where),
        order=order,
        descending=descending,
        limit=limit,
        after=None if after is None else decode_page_token(after),
    )
