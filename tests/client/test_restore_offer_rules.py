"""Which documents a device offers back to a restored node, and what the offer does there.

The node's state after a restore is an earlier state of the same document history as the one
the device held (a prefix of the same writes), or none at all. The device offers exactly when it
held something more, and the offer applied on the node's state gives the document the device
held; states that are equal, or where the node is ahead, are not offered.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from breakwater.client.restore_offers import offer_for
from breakwater.core import document
from breakwater.core.document import State

FIELDS = st.sampled_from(["a", "b", "c"])
WRITE = st.one_of(
    st.tuples(st.just("set"), st.dictionaries(FIELDS, st.integers(0, 9), min_size=1)),
    st.tuples(st.just("patch"), st.dictionaries(FIELDS, st.integers(0, 9), min_size=1)),
    st.tuples(st.just("delete"), st.none()),
)


def history(writes: list[tuple[str, dict[str, Any] | None]]) -> list[State | None]:
    """The document's state before the first write and after each one."""
    states: list[State | None] = [None]
    state: State | None = None
    newest = ""
    for n, (op, data) in enumerate(writes):
        _, state, _, newest = document.apply(
            state, newest, op, data, f"{1000 + n:013d}-0000-n", f"m{n}"
        )
        states.append(state)
    return states


@given(writes=st.lists(WRITE, min_size=1, max_size=6), data=st.data())
def test_a_device_offers_exactly_what_the_restored_node_lacks(
    writes: list[tuple[str, dict[str, Any] | None]], data: st.DataObject
) -> None:
    states = history(writes)
    held_at = data.draw(st.integers(1, len(writes)))
    node_at = data.draw(st.integers(0, len(writes)))
    held, node = states[held_at], states[node_at]
    assert held is not None
    offer = offer_for("notes", "d", held, node)
    if node_at >= held_at:
        assert offer is None, "the node holds all the device held"
        return
    if node is None and document.visible(held) is None:
        assert offer is None, "nothing to bring back of a document the node never had"
        return
    if node is not None and document.version(node) == document.version(held):
        assert offer is None
        return
    assert offer is not None
    _, merged, shown, _ = document.apply(
        node, "" if node is None else document.newest_write(node), offer.op, offer.data,
        offer.hlc, offer.mutation_id,
    )  # fmt: skip
    assert shown == document.visible(held)
    assert document.visible(merged) == shown


def test_documents_with_counters_are_not_offered() -> None:
    _, held, _, _ = document.apply(None, "", "increment", {"n": 1}, "0000000001000-0000-n", "m1")
    assert offer_for("notes", "d", held, None) is None
