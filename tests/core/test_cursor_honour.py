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
            cursor.require_honourable(vector, head, cursor.Peers(frozenset({"us"})))
    else:
        cursor.require_honourable(vector, head, cursor.Peers(frozenset({"us"})))


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


LOST = "us~00000000000a"
REBUILT = "us~00000000000b"


@pytest.mark.parametrize(
    ("current", "held", "seq", "honoured"),
    [
        (None, {}, 9, True),  # the peer's incarnation is not known yet: it may bring them
        (LOST, {}, 9, True),  # still the peer's current origin: replication may bring them
        (REBUILT, {LOST: 9}, 9, True),  # retired, but a peer still holds that far
        (REBUILT, {LOST: 8}, 9, False),  # retired, and no region holds change 9 of it
        (REBUILT, {}, 3, True),  # retired, but within this store's own head
    ],
)
def test_a_retired_incarnation_of_a_peer_is_honoured_only_as_far_as_someone_holds_it(
    current: str | None, held: dict[str, int], seq: int, honoured: bool
) -> None:
    """A peer origin that is not the peer's current one never grows (ADR 0037)."""
    peers = cursor.Peers(frozenset({"us"}), {} if current is None else {"us": current}, held)
    head = {"eu~0123456789ab": 4, LOST: 3}
    if honoured:
        cursor.require_honourable({LOST: seq}, head, peers)
        return
    with pytest.raises(CursorUnknown) as refused:
        cursor.require_honourable({LOST: seq}, head, peers)
    problem = refused.value.to_problem()
    assert (problem["status"], problem["reason"], problem["origin"]) == (410, "retired", LOST)
