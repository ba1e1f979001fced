"""The document CRDT: merge rules and convergence (I4)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.core import counter, document
from breakwater.core.document import State


def stamp(wall: int, node: str = "a", counter: int = 0) -> str:
    """An HLC stamp at a small wall time."""
    return f"{wall:013d}-{counter:04d}-{node}"


def apply_all(deltas: list[State]) -> State:
    """Fold deltas into an empty document."""
    state = document.empty_state()
    for delta in deltas:
        state = document.join(state, delta)
    return state


def test_set_writes_every_field() -> None:
    """A set makes the document exactly its data."""
    state = apply_all([document.delta_for("set", {"a": 1, "b": "x"}, stamp(1), "m1")])
    assert document.visible(state) == {"a": 1, "b": "x"}


def test_later_set_replaces_fields_of_earlier_writes() -> None:
    """A newer set removes fields that only older writes had."""
    state = apply_all(
        [
            document.delta_for("set", {"a": 1, "b": 2}, stamp(1), "m1"),
            document.delta_for("set", {"c": 3}, stamp(2), "m2"),
        ]
    )
    assert document.visible(state) == {"c": 3}


def test_patch_newer_than_set_survives_it() -> None:
    """Per-field LWW: a patch stamped after a concurrent set keeps its field."""
    deltas = [
        document.delta_for("patch", {"b": 9}, stamp(3, "dev2"), "m2"),
        document.delta_for("set", {"a": 1}, stamp(2, "dev1"), "m1"),
    ]
    assert document.visible(apply_all(deltas)) == {"a": 1, "b": 9}


def test_patch_null_removes_a_field() -> None:
    """A patch with null removes the field."""
    deltas = [
        document.delta_for("set", {"a": 1, "b": 2}, stamp(1), "m1"),
        document.delta_for("patch", {"a": None}, stamp(2), "m2"),
    ]
    assert document.visible(apply_all(deltas)) == {"b": 2}


def test_delete_is_a_tombstone_until_a_newer_write() -> None:
    """A delete hides the document; a newer write brings it back with only the new fields."""
    deleted = apply_all(
        [
            document.delta_for("set", {"a": 1}, stamp(1), "m1"),
            document.delta_for("delete", None, stamp(2), "m2"),
        ]
    )
    assert document.visible(deleted) is None
    revived = document.join(deleted, document.delta_for("patch", {"b": 2}, stamp(3), "m3"))
    assert document.visible(revived) == {"b": 2}


def test_concurrent_increments_all_count() -> None:
    """Increments from different writers sum, whatever the order."""
    deltas = [
        document.delta_for("set", {"n": 10}, stamp(1), "m0"),
        document.delta_for("increment", {"n": 2}, stamp(2, "x"), "m1"),
        document.delta_for("increment", {"n": -5}, stamp(2, "y"), "m2"),
    ]
    assert document.visible(apply_all(deltas)) == {"n": 7}
    assert document.visible(apply_all(deltas[::-1])) == {"n": 7}


def test_same_increment_twice_counts_once() -> None:
    """An increment is keyed by its mutation id: receiving it again changes nothing (I2)."""
    delta = document.delta_for("increment", {"n": 1}, stamp(2), "m1")
    assert document.visible(apply_all([delta, delta, delta])) == {"n": 1}


def test_set_after_increment_resets_the_counter() -> None:
    """A set applied after an increment erases it: the counter restarts from the set's value."""
    state: State | None = None
    newest = ""
    for op, data, hlc, mid in [
        ("increment", {"n": 5}, stamp(1), "m1"),
        ("set", {"n": 0}, stamp(2), "m2"),
        ("increment", {"n": 1}, stamp(3), "m3"),
    ]:
        _, state, visible, newest = document.apply(state, newest, op, data, hlc, mid)
    assert visible == {"n": 1}


def test_increment_over_a_string_starts_from_zero() -> None:
    """An increment newer than a non-numeric value counts from zero."""
    deltas = [
        document.delta_for("set", {"n": "many"}, stamp(1), "m1"),
        document.delta_for("increment", {"n": 3}, stamp(2), "m2"),
    ]
    assert document.visible(apply_all(deltas)) == {"n": 3}


def test_losing_write_is_reported_as_conflict() -> None:
    """A patch older than the stored field value reports the fields it lost."""
    newer = apply_all([document.delta_for("patch", {"a": 2}, stamp(5), "m1")])
    older = document.delta_for("patch", {"a": 1, "b": 1}, stamp(4), "m2")
    assert document.lost_fields(older, document.join(newer, older)) == ["a"]


def test_version_depends_only_on_state() -> None:
    """Equal states give equal versions; different states different ones."""
    one = apply_all([document.delta_for("set", {"a": 1}, stamp(1), "m1")])
    same = apply_all([document.delta_for("set", {"a": 1}, stamp(1), "m1")])
    other = apply_all([document.delta_for("set", {"a": 2}, stamp(1), "m1")])
    assert document.version(one) == document.version(same) != document.version(other)


def positioned(state: State) -> State:
    """``state`` as a node holds it: every increment at a feed position."""
    counters = {}
    for name, value in state["n"].items():
        for index, mid in enumerate(sorted(value.get("i", {}))):
            value = counter.place(value, mid, "o", index + 1)
        counters[name] = value
    return {**state, "n": counters}


# Property tests (I4) -----------------------------------------------------------------------

FIELDS = st.sampled_from(["a", "b", "c", "n"])
VALUES = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.booleans())


@st.composite
def mutation_sets(draw: st.DrawFn) -> list[State]:
    """A set of distinct mutations (unique HLC and id each) as deltas."""
    count = draw(st.integers(1, 12))
    deltas = []
    for index in range(count):
        op = draw(st.sampled_from(["set", "patch", "delete", "increment"]))
        hlc = stamp(draw(st.integers(1, 6)), draw(st.sampled_from(["d1", "d2", "d3"])), index)
        data: dict[str, Any] | None
        if op == "delete":
            data = None
        elif op == "increment":
            data = draw(
                st.dictionaries(FIELDS, st.one_of(st.integers(-3, 3), st.floats(-2, 2)), min_size=1)
            )
        else:
            values = VALUES if op == "patch" else VALUES.filter(lambda v: v is not None)
            data = draw(st.dictionaries(FIELDS, values, max_size=4))
        deltas.append(document.delta_for(op, data, hlc, f"m{index}"))
    return deltas


@settings(max_examples=300, deadline=None)
@given(mutation_sets(), st.randoms(use_true_random=False))
def test_any_order_and_duplication_converges(deltas: list[State], rnd: random.Random) -> None:
    """Permuted and duplicated deliveries give identical states, documents and versions."""
    reference = apply_all(deltas)
    delivery = deltas + [rnd.choice(deltas) for _ in range(rnd.randint(0, len(deltas)))]
    rnd.shuffle(delivery)
    replica = apply_all(delivery)
    assert replica == reference
    assert document.visible(replica) == document.visible(reference)
    assert document.version(replica) == document.version(reference)


@settings(max_examples=200, deadline=None)
@given(mutation_sets(), st.randoms(use_true_random=False))
def test_joining_partial_replicas_converges(deltas: list[State], rnd: random.Random) -> None:
    """Replicas that saw different subsets, joined in any grouping, equal the whole (ACI)."""
    reference = apply_all(deltas)
    split = rnd.randint(0, len(deltas))
    shuffled = rnd.sample(deltas, len(deltas))
    left, right = apply_all(shuffled[:split]), apply_all(shuffled[split:])
    assert document.join(left, right) == reference
    assert document.join(right, left) == reference
    assert document.join(document.join(left, right), left) == reference


@settings(max_examples=300, deadline=None)
@given(mutation_sets())
def test_pack_then_unpack_restores_the_state(deltas: list[State]) -> None:
    """Storage keeps pack(state) beside the visible document; unpacking restores the state."""
    state = apply_all(deltas)
    assert document.unpack(document.pack(state), document.visible(state)) == state


def test_pack_of_a_set_document_holds_no_values() -> None:
    """A document written by one set stores only its clocks, not its values twice."""
    state = apply_all([document.delta_for("set", {"a": "x" * 500}, stamp(1), "m1")])
    assert document.pack(state) == {"f": {}, "s": stamp(1), "x": "", "n": {}}


@settings(max_examples=300, deadline=None)
@given(mutation_sets(), st.dictionaries(FIELDS, VALUES.filter(lambda v: v is not None)))
def test_apply_fast_path_equals_the_join(deltas: list[State], data: dict[str, Any]) -> None:
    """document.apply's shortcut for a newest set gives exactly what the general join gives."""
    state = positioned(apply_all(deltas))
    hlc = stamp(99, "z")
    delta, fast, fast_visible, fast_newest = document.apply(
        state, document.newest_write(state), "set", data, hlc, "mz"
    )
    joined = document.join(state, delta)
    assert fast == joined
    assert fast_visible == document.visible(joined)
    assert fast_newest == document.newest_write(joined)
