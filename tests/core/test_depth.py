"""``check_depth`` against the recursive definition of JSON nesting depth."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from breakwater.core.errors import ValidationError
from breakwater.core.mutation import check_depth

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    """A scalar is one level; a container is one more than its deepest member."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return 1 + max((depth(member) for member in value), default=0)
    return 1


def refused(value: Any, max_depth: int) -> bool:
    try:
        check_depth(value, max_depth)
    except ValidationError:
        return True
    return False


@given(json_values, st.integers(min_value=1, max_value=8))
def test_check_depth_refuses_exactly_what_is_nested_deeper_than_the_limit(
    value: Any, max_depth: int
) -> None:
    assert refused(value, max_depth) == (depth(value) > max_depth)


def test_a_very_deep_document_is_refused_without_recursion() -> None:
    """Ten thousand levels: no RecursionError, a clear refusal."""
    value: Any = 1
    for _ in range(10_000):
        value = {"a": [value]}
    assert refused(value, 32)
