"""The one rule for cursors a store cannot honour (ADR 0018): ahead of its head, or unknown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakwater.core import cursor
from breakwater.core.errors import CursorUnknown

ORIGINS = st.sampled_from(["eu~0123456789ab", "eu~ba9876543210", "us~00000000000a", "eu"])
VECTORS = st.dictionaries(ORIGINS, st.integers(0, 50), max_size=4)


@given(VECTORS, VECTORS)
def test_a_vector_is_honoured_exactly_when_the_head_covers_it(
    vector: dict[str, int], head: dict[str, int]
) -> None:
    """Without peer regions: refused iff some origin of the vector is ahead of the head."""
    ahead = any(seq > head.get(origin, 0) for origin, seq in vector.items())
    if ahead:
        with pytest.raises(CursorUnknown):
            cursor.require_honourable(vector, head)
    else:
        cursor.require_honourable(vector, head)


@given(VECTORS, VECTORS)
def test_an_origin_of_a_peer_region_may_be_ahead(
    vector: dict[str, int], head: dict[str, int]
) -> None:
    """Every origin of region ``us`` is allowed ahead when ``us`` is a peer; others are not."""
    own_ahead = any(
        seq > head.get(origin, 0) for origin, seq in vector.items() if not origin.startswith("us")
    )
    if own_ahead:
        with pytest.raises(CursorUnknown):
            cursor.require_honourable(vector, head, peer_regions={"us"})
    else:
        cursor.require_honourable(vector, head, peer_regions={"us"})


@pytest.mark.parametrize(
    ("vector", "reason"),
    [({"eu~0123456789ab": 6}, "ahead"), ({"xx~0123456789ab": 1}, "unknown_origin")],
)
def test_the_reason_says_whether_the_origin_is_known(vector: dict[str, int], reason: str) -> None:
    """``ahead``: an origin the store has, not that far; ``unknown_origin``: one it never had."""
    with pytest.raises(CursorUnknown) as refused:
        cursor.require_honourable(vector, {"eu~0123456789ab": 5})
    problem = refused.value.to_problem()
    assert (problem["status"], problem["type"], problem["reason"]) == (
        410,
        "cursor_unknown",
        reason,
    )
