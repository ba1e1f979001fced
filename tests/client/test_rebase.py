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


def server_apply(order: list[tuple[str, Any, str, str]]) -> State:
    """What a node computes applying the mutations in this order (core's fast paths included)."""
    state: State | None = None
    newest = ""
    for op, data, hlc, mid in order:
        _, state, _, newest = document.apply(state, newest, op, data, hlc, mid)
    return state if state is not None else document.empty_state()


@settings(max_examples=300, deadline=None)
@given(
    mutations(),
    st.data(),
)
def test_rebase_over_any_server_state_equals_server_side_application(
    all_mutations: list[tuple[str, Any, str, str]], data: st.DataObject
) -> None:
    """For any split into server-known and pending (overlapping: acked but not yet settled)
    mutations, in any arrival order, the device's view is the server's final document."""
    on_server = data.draw(st.permutations(all_mutations)).copy()
    known = data.draw(st.integers(0, len(on_server)))
    server_state = server_apply(on_server[:known])
    pending = [m for m in all_mutations if m not in on_server[:known]]
    pending += data.draw(st.lists(st.sampled_from(on_server[:known]), max_size=2)) if known else []
    local = rebase(server_state, pending)
    final = server_apply(on_server)
    assert document.version(document.normalize(local)) == document.version(
        document.normalize(final)
    )
    assert view_of(local)[0] == document.visible(final)


def test_rebase_without_server_state_is_the_pending_writes() -> None:
    """A document only this device wrote is its own writes."""
    state = rebase(None, [("set", {"a": 1}, "1700000000001-0000-d", "m1")])
    assert view_of(state) == ({"a": 1}, "1700000000001-0000-d")
