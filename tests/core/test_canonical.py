"""The canonical JSON form: one text per JSON value, the one JavaScript writes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from breakwater.core import codec, document
from breakwater.core.canonical import _encode, dumps_canonical, number_text

finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | finite
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_a_whole_float_is_written_as_the_integer() -> None:
    """1.0 and 1 are one JSON number: the same bytes, so the same version on every replica."""
    assert (
        dumps_canonical({"a": 1.0, "b": [-0.0, 2.5e20]}) == b'{"a":1,"b":[0,250000000000000000000]}'
    )
    as_floats = document.delta_for("set", {"n": 3.0}, "0000000000001-0000-a", "m1")
    as_ints = document.delta_for("set", {"n": 3}, "0000000000001-0000-a", "m1")
    assert document.version(as_floats) == document.version(as_ints)


def test_numbers_switch_to_exponents_where_javascript_does() -> None:
    """Below 1e-6 and from 1e21 on, as Number.prototype.toString (RFC 8785 3.2.2.3)."""
    texts = [number_text(x) for x in (1e-6, 1e-7, 1e20, 1e21, 1.5e-10, 123e-20)]
    assert texts == ["0.000001", "1e-7", "100000000000000000000", "1e+21", "1.5e-10", "1.23e-18"]


def test_integers_no_double_holds_are_written_in_full() -> None:
    """2**53 + 1 has no double: its digits stay (a JavaScript client cannot hold it at all)."""
    assert dumps_canonical([2**53 + 1, 2**60]) == b"[9007199254740993,1152921504606847000]"


@given(finite)
def test_number_text_reads_back_as_the_same_double(value: float) -> None:
    """The text is exact: parsing it gives the double back."""
    text = number_text(value)
    assert float(text) == value


@given(json_values)
def test_the_canonical_text_is_a_fixed_point(value: Any) -> None:
    """Parsing canonical bytes and writing them again gives the same bytes (no orjson form such
    as 1.0 or 1e-07 slips through)."""
    text = dumps_canonical(value)
    assert dumps_canonical(codec.loads(text)) == text


@given(st.dictionaries(st.text(), st.integers(-(2**53), 2**53), max_size=6))
def test_keys_are_sorted_by_code_point(value: dict[str, int]) -> None:
    """Object members in code point (UTF-8 byte) order."""
    parsed = codec.loads(dumps_canonical(value))
    assert list(parsed) == sorted(value)


numberish = st.text(alphabet='0123456789.eE[:,-"x\\', max_size=24)
"""Strings made of what numbers and their separators are made of, quotes and escapes."""
json_like_numbers = st.recursive(
    st.none() | st.booleans() | finite | st.integers(-(2**63), 2**64 - 1) | numberish,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(numberish, inner, max_size=4),
    max_leaves=20,
)


@given(json_values | json_like_numbers)
def test_the_fast_path_writes_what_the_token_by_token_encoder_writes(value: Any) -> None:
    """orjson's text with numbers as fragments gives the bytes of the value written token by
    token (the encoder bare scalars use), strings that look like numbers included."""
    if isinstance(value, dict | list):
        assert dumps_canonical(value) == _encode(value).encode()


def test_a_number_inside_a_string_is_left_as_it_is() -> None:
    """Text such as ``":1.0"`` inside a string is not a number and keeps its spelling."""
    value = {"a": ':1.0,[2.50]\\":3.0', "b": [1.0, "x\\", 1e-7]}
    assert dumps_canonical(value) == b'{"a":":1.0,[2.50]\\\\\\":3.0","b":[1,"x\\\\",1e-7]}'


@given(finite | st.floats(min_value=-1e22, max_value=1e22) | st.floats(-1e-4, 1e-4))
def test_every_float_inside_a_document_is_written_as_javascript_writes_it(value: float) -> None:
    """Whole, fractional and exponent floats of every magnitude, as members: the fast path
    keeps orjson's text only where it is ECMAScript's."""
    assert dumps_canonical({"v": value, "w": [value]}) == (
        f'{{"v":{number_text(value)},"w":[{number_text(value)}]}}'.encode()
    )
