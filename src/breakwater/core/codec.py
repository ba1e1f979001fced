"""JSON encoding for every hot path (the canonical form for hashing is in canonical.py).

orjson is the one JSON codec of the project: it rejects NaN and Infinity on input and reads integers
beyond 64 bits as doubles, as JavaScript does, so every document is representable identically in
SQLite, PostgreSQL and on devices.
"""

from __future__ import annotations

from typing import Any

import orjson

from breakwater.core.errors import ValidationError

JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    """Parse JSON that this process wrote itself (trusted)."""
    return orjson.loads(data)


def parse_body(data: bytes | str, what: str = "body") -> Any:
    """Parse untrusted JSON, turning any syntax error into a :class:`ValidationError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from exc
