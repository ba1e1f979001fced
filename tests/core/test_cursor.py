"""Feed cursors (version vectors)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakwater.core import cursor
from breakwater.core.errors import ValidationError

VECTORS = st.dictionaries(
    st.from_regex(r"[A-Za-z0-9_.~:-]{1,10}", fullmatch=True), st.integers(0, 2**62), max_size=5
)


@given(VECTORS)
def test_encode_decode_round_trips(vector: dict[str, int]) -> None:
    """decode(encode(v)) == v for every vector."""
    assert cursor.decode(cursor.encode(vector)) == vector


def test_empty_cursor_is_the_empty_vector() -> None:
    """The empty string and None mean 'from the beginning'."""
    assert cursor.decode("") == {}
    assert cursor.decode(None) == {}


@pytest.mark.parametrize("bad", ["x", "c1.!!!", "c1.bm90IGpzb24", "c2.e30", "c1.WzFd"])
def test_decode_refuses_garbage(bad: str) -> None:
    """Anything that is not an encoded vector is a ValidationError."""
    with pytest.raises(ValidationError):
        cursor.decode(bad)


def test_decode_refuses_negative_and_boolean_seqs() -> None:
    """Seqs must be non-negative integers."""
    forged_bodies: tuple[dict[str, Any], ...] = ({"a": -1}, {"a": True}, {"a": 1.5})
    for body in forged_bodies:
        forged = cursor.PREFIX + cursor.encode(body)[len(cursor.PREFIX) :]
        with pytest.raises(ValidationError):
            cursor.decode(forged)


def test_advance_only_moves_forward() -> None:
    """advance keeps the maximum seq per origin."""
    assert cursor.advance({"a": 5}, [("a", 3), ("b", 2), ("a", 7)]) == {"a": 7, "b": 2}
    assert cursor.covers({"a": 7}, "a", 7)
    assert not cursor.covers({"a": 7}, "b", 1)
