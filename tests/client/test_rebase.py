"""Rebase: the device's view (server state + pending mutations) equals what the server computes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.client.rebase import rebase, view_of
from breakwater.core import document
from breakwater.core.document import State

FIELDS = ["a", "b", "n"]
values = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.booleans())


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, Any, str, str]]:
    """Mutations with distinct stamps (from several devices) and ids."""
    count = draw(st.integers(1, 10))
    result = []
    walls = draw(st.lists(st.integers(1, 30), min_size=count, max_size=count))
    for index, wall in enumerate(walls):
        op = draw(st.sampled_from(["set", "patch", "delete", "increment"]))
        hlc = f"{1_700_000_000_000 + wall:013d}-{index:04d}-dev{index % 3}"
        data: dict[str, Any] | None
        if op == "delete":
            data = None
        elif op == "increment":
            data = {draw(st.sampled_from(FIELDS)): draw(st.integers(-3, 3))}
        else:
            keys = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=3))
            data = {key: draw(values) for key in keys}
            if op == "set":
                data = {k: v for k, v in data.items() if v is not None}
        result.append((op, data, hlc, f"m{index}"))
    return result


Mutation = tuple[str, Any, str, str]


def server_apply(order: list[Mutation]) -> tuple[State, dict[str, tuple[str, int]]]:
    """What a node computes applying the mutations in this order (core's fast paths and its
    folding included), and the position it gave each."""
    state = document.empty_state()
    newest = ""
    positions = {}
    for seq, (op, data, hlc, mid) in enumerate(order, start=1):
        _, state, _, newest = document.apply(state, newest, op, data, hlc, mid)
        state = document.settle(state, mid, "o", seq, {"o": seq})
        positions[mid] = ("o", seq)
    return state, positions


@settings(max_examples=300, deadline=None)
@given(
    mutations(),
    st.data(),
)
def test_rebase_over_any_server_state_equals_server_side_application(
    all_mutations: list[Mutation], data: st.DataObject
) -> None:
    """For any split into server-known and pending mutations (overlapping: acknowledged, folded
    by the server, but not yet settled), the device's view is the server's final document once
    the server applies the pending ones in the order the device pushes them."""
    on_server = data.draw(st.permutations(all_mutations)).copy()
    known = data.draw(st.integers(0, len(on_server)))
    server_state, positions = server_apply(on_server[:known])
    pending = [m for m in all_mutations if m not in on_server[:known]]
    final, _ = server_apply(on_server[:known] + pending)
    acked = data.draw(st.lists(st.sampled_from(on_server[:known]), max_size=2)) if known else []
    local = rebase(
        server_state,
        [(*m, positions[m[3]]) for m in acked] + [(*m, None) for m in pending],
    )
    assert view_of(local)[0] == document.visible(final)


def test_rebase_without_server_state_is_the_pending_writes() -> None:
    """A document only this device wrote is its own writes."""
    state = rebase(None, [("set", {"a": 1}, "1700000000001-0000-d", "m1", None)])
    assert view_of(state) == ({"a": 1}, "1700000000001-0000-d")


def test_acknowledged_increment_the_server_folded_counts_once() -> None:
    """An acknowledged increment still in the outbox is seen in the server's folded base."""
    increment = ("increment", {"n": 2}, "1700000000001-0000-d", "m1")
    server_state, positions = server_apply([increment])
    local = rebase(server_state, [(*increment, positions["m1"])])
    assert view_of(local)[0] == {"n": 2}
