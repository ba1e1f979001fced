"""Untrusted JSON: duplicate keys are refused (issue 16 item 9), everything else reads as before."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakwater.core import codec
from breakwater.core.errors import ValidationError

KEYS = st.text(max_size=4)
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(VALUES)
def test_what_orjson_writes_reads_back_unchanged(value: Any) -> None:
    """The fast path: a compact body (as the SDK sends) parses to the same value."""
    assert codec.parse_body(orjson.dumps(value)) == value


@given(VALUES, st.sampled_from([None, 1, 2]), st.booleans())
def test_any_other_spelling_reads_back_unchanged(
    value: Any, indent: int | None, ascii_: bool
) -> None:
    """The slow path: blanks and escapes (curl, other languages) parse to the same value."""
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_)
    assert codec.parse_body(text) == value
    assert codec.parse_body(text.encode()) == value


@given(
    pairs=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=5),
    repeat=st.data(),
    wrap=st.sampled_from(["{}", '{"mutations":[{}]}', "[1,{}]", '{"a":{"b":{}}}']),
)
def test_a_key_twice_in_any_object_is_refused(
    pairs: list[tuple[str, Any]], repeat: st.DataObject, wrap: str
) -> None:
    """Wherever the object sits, whatever the values, a repeated key is a ValidationError."""
    key, _ = repeat.draw(st.sampled_from(pairs))
    pairs = [*pairs, (key, repeat.draw(VALUES))]
    members = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs)
    text = wrap.replace("{}", "{" + members + "}", 1)
    with pytest.raises(ValidationError, match="twice"):
        codec.parse_body(text.encode())


@given(pairs=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=5), repeat=st.data())
def test_a_key_twice_in_pythons_default_spelling_is_refused(
    pairs: list[tuple[str, Any]], repeat: st.DataObject
) -> None:
    """A body as ``json.dumps`` writes it (a blank after "," and ":") with a key twice is
    refused too."""
    key, _ = repeat.draw(st.sampled_from(pairs))
    members = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in [*pairs, (key, 1)])
    with pytest.raises(ValidationError, match="twice"):
        codec.parse_body("{" + members + "}")


def test_keys_told_apart_by_blanks_are_two_keys() -> None:
    """``"a, b"`` and ``"a,b"`` are two members, not a duplicate, and both are kept."""
    text = json.dumps({"a, b": 1, "a,b": 2, "c": "x: y"})
    assert codec.parse_body(text.encode()) == {"a, b": 1, "a,b": 2, "c": "x: y"}


def test_a_key_and_its_escaped_spelling_are_the_same_key() -> None:
    """``"a"`` and ``"\\u0061"`` name one member: refused like any duplicate."""
    with pytest.raises(ValidationError, match="'a' twice"):
        codec.parse_body(b'{"a":1,"\\u0061":2}')


def test_nesting_the_encoder_cannot_write_still_parses() -> None:
    """Past the encoder's depth the check falls back to the standard library, not a 500."""
    deep = b"[" * 300 + b"]" * 300
    assert isinstance(codec.parse_body(deep), list)
    with pytest.raises(ValidationError):
        codec.parse_body(b"[" * 1020 + b"{}" + b"]" * 1020)
