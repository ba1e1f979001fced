"""JSON encoding for every hot path (the canonical form for hashing is in canonical.py).

orjson is the one JSON codec of the project: it rejects NaN and Infinity on input and reads integers
beyond 64 bits as doubles, as JavaScript does, so every document is representable identically in
SQLite, PostgreSQL and on devices.
"""

from __future__ import annotations

import json
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
    """Parse untrusted JSON, turning any syntax error into a :class:`ValidationError`.

    An object with the same key twice is refused too: orjson keeps the last value, while a
    proxy or another parser may keep the first, and then they see another mutation than the
    node applied. orjson cannot report duplicates, so the text is checked by re-encoding the
    parsed value: equal bytes (every body our SDK sends), or equal once the blanks Python's
    ``json.dumps`` puts after "," and ":" are taken out, prove there were none; anything else
    (other blanks, escapes, duplicates) is re-read once by the standard library, which does
    see them. See docs/benchmarks.md for the cost.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from exc
    if isinstance(value, dict | list) and not _is_own_encoding(value, data):
        _refuse_duplicate_keys(data, what)
    return value


def _is_own_encoding(value: Any, data: bytes | str) -> bool:
    """Whether ``data`` is ``value``'s compact encoding, or that with a blank after each "," and
    ":". Taking those pairs out of strings too cannot hide a duplicate: the text left would
    hold every member the body held, and then could not be the encoding of a value without
    the duplicate (members whose keys only those blanks told apart become duplicates of it)."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # nested deeper than the encoder goes
        return False
    text = data.encode() if isinstance(data, str) else data
    if encoded == text:
        return True
    return len(text) > len(encoded) and encoded == text.replace(b", ", b",").replace(b": ", b":")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


class _DuplicateKey(Exception):
    """Raised out of the standard library's parser with the repeated key."""


def _refuse_duplicate_keys(data: bytes | str, what: str) -> None:
    try:
        json.loads(data, object_pairs_hook=_unique_keys)
    except _DuplicateKey as duplicate:
        key = str(duplicate)
        shown = repr(key) if len(key) <= 80 else f"{key[:80]!r}..."
        raise ValidationError(f"{what} has the key {shown} twice in one object") from None
    except RecursionError:
        raise ValidationError(f"{what} is nested too deeply") from None
