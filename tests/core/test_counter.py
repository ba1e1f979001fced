"""Counters that stay small: folding keeps every increment counted once, whenever it happens."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.core import codec, counter, document
from breakwater.core.document import State

Op = tuple[str, Any, str, str]
"""``(op, data, hlc, mutation_id)``"""


def stamp(wall: int, node: str = "a", logical: int = 0) -> str:
    """An HLC stamp at a small wall time."""
    return f"{wall:013d}-{logical:04d}-{node}"


@dataclass
class Region:
    """A replica that first-applies mutations the way the engine does: dedupe by id, apply,
    then give the mutation its position and fold what ``stable`` covers (nothing if ``{}``)."""

    name: str
    state: State = field(default_factory=document.empty_state)
    known: set[str] = field(default_factory=set)
    seq: int = 0

    def apply(self, op: Op, own_head_folds: bool = False) -> None:
        kind, data, hlc, mid = op
        if mid in self.known:
            return
        self.known.add(mid)
        self.seq += 1
        newest = document.newest_write(self.state)
        _, self.state, _, _ = document.apply(self.state, newest, kind, data, hlc, mid)
        stable = {self.name: self.seq} if own_head_folds else {}
        self.state = document.settle(self.state, mid, self.name, self.seq, stable)

    def receive(self, other: Region) -> None:
        """State-based replication: join the other's state and learn its mutation ids."""
        self.state = document.join(self.state, other.state)
        self.known |= other.known


def value(state: State) -> Any:
    doc = document.visible(state)
    return None if doc is None else doc.get("n")


def highest(state: State) -> dict[str, int]:
    """Every position the state mentions (the vector a fold may use at most)."""
    vector: dict[str, int] = {}
    for entry in state["n"].values():
        positions = [(o, b[0]) for o, b in entry.get("b", {}).items()]
        positions += [
            (o, s) for i in entry.get("i", {}).values() for o, s in (i[2] if len(i) > 2 else [])
        ]
        for origin, seq in positions:
            vector[origin] = max(vector.get(origin, 0), seq)
    return vector


def fold_at(state: State, cut: dict[str, int]) -> State:
    return {**state, "n": {name: counter.fold(c, cut) for name, c in state["n"].items()}}


@st.composite
def ops(draw: st.DrawFn, max_size: int = 25, resets: bool = True) -> list[Op]:
    """Increments of ``n`` (retries included: a repeated mutation id) mixed with resets; a patch
    may write a string (a counter field can hold any value)."""
    kinds = ["increment", "increment", "increment", "patch", "set", "delete"]
    result: list[Op] = []
    for index in range(draw(st.integers(1, max_size))):
        if result and draw(st.integers(0, 5)) == 0:
            result.append(draw(st.sampled_from(result)))  # a retry of an earlier mutation
            continue
        kind = draw(st.sampled_from(kinds if resets else ["increment"]))
        hlc = stamp(draw(st.integers(1, 20)), draw(st.sampled_from(["d1", "d2"])), index)
        data: Any
        if kind == "increment":
            data = {"n": draw(st.integers(-5, 9))}
        elif kind == "patch":
            data = {"n": draw(st.one_of(st.integers(0, 50), st.none(), st.just("x")))}
        elif kind == "set":
            data = draw(st.sampled_from([{}, {"n": 7}, {"t": "x"}]))
        else:
            data = None
        result.append((kind, data, hlc, f"m{index}"))
    return result


def expected_value(history: list[Op]) -> Any:
    """The documented meaning, computed without any counter state: the field's newest write
    (LWW over sets, patches and deletes) plus every increment applied since the last reset
    that was the field's newest write when it was applied; each mutation id once."""
    fields = document.empty_state()
    live: list[int] = []
    seen: set[str] = set()
    for kind, data, hlc, mid in history:
        if mid in seen:
            continue
        seen.add(mid)
        if kind == "increment":
            live.append(data["n"])
            continue
        register = fields["f"].get("n")
        floor = max(fields["s"], fields["x"], register[0] if register else "")
        if (kind != "patch" or "n" in data) and hlc > floor:
            live = []
        fields = document.join(fields, document.delta_for(kind, data, hlc, mid))
    base = document.visible(fields) or {}
    start = base.get("n")
    if not live:
        return start
    begin: int = start if isinstance(start, int) and not isinstance(start, bool) else 0
    return begin + sum(live)


@settings(max_examples=300, deadline=None)
@given(ops())
def test_node_value_is_the_documented_meaning_folded_or_not(history: list[Op]) -> None:
    """A node that folds at once and one that never folds show the documented value."""
    folding, keeping = Region("A"), Region("A")
    for op in history:
        folding.apply(op, own_head_folds=True)
        keeping.apply(op)
    want = expected_value(history)
    if document.visible(keeping.state) is not None:
        assert value(keeping.state) == want
    assert document.visible(folding.state) == document.visible(keeping.state)
    assert not any("i" in c for c in folding.state["n"].values())


@settings(max_examples=300, deadline=None)
@given(ops(), st.randoms(use_true_random=False))
def test_folding_at_any_stable_cut_changes_no_value_and_no_merge(
    history: list[Op], rnd: random.Random
) -> None:
    """value(fold(s)) == value(s), and merge(fold(a), b) equals merge(a, b) in value, for any
    snapshots a and b of one region's history and any cut a has committed."""
    node = Region("A")
    snapshots = [node.state]
    for op in history:
        node.apply(op)
        snapshots.append(node.state)
    a, b = rnd.choice(snapshots), rnd.choice(snapshots)
    cut = {"A": rnd.randint(0, highest(a).get("A", 0))}
    folded = fold_at(a, cut)
    assert document.visible(folded) == document.visible(a)
    assert document.visible(document.join(folded, b)) == document.visible(document.join(a, b))
    assert document.visible(document.join(b, folded)) == document.visible(document.join(a, b))
    assert document.join(folded, a) == folded  # what a fold forgot, the base still covers


@settings(max_examples=200, deadline=None)
@given(ops(), st.randoms(use_true_random=False))
def test_merges_of_folded_and_unfolded_replicas_are_aci(
    history: list[Op], rnd: random.Random
) -> None:
    """Joins of any snapshots, folded at any committed cut or not, are commutative,
    associative and idempotent."""
    node = Region("A")
    replicas = [node.state]
    for op in history:
        node.apply(op)
        replicas.append(node.state)
        replicas.append(fold_at(node.state, {"A": rnd.randint(0, node.seq)}))
    x, y, z = (rnd.choice(replicas) for _ in range(3))
    join = document.join
    assert join(x, y) == join(y, x)
    assert join(x, join(y, z)) == join(join(x, y), z)
    assert join(x, x) == document.normalize(x)


@st.composite
def region_runs(draw: st.DrawFn, resets: bool) -> list[tuple[str, Any]]:
    """Steps of two or three regions: first-applications (a mutation may reach several
    regions before they exchange it), exchanges of state, and barriers where all regions
    have exchanged everything and fold at a cut they all hold."""
    pool = draw(ops(max_size=15, resets=resets))
    steps: list[tuple[str, Any]] = []
    for op in pool:
        for region in draw(st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True)):
            steps.append(("apply", (region, op)))
        if draw(st.booleans()):
            steps.append(("send", (draw(st.integers(0, 2)), draw(st.integers(0, 2)))))
        if draw(st.integers(0, 4)) == 0:
            steps.append(("barrier", draw(st.integers(0, 2**32))))
    return steps


def run_regions(
    steps: list[tuple[str, Any]], fold: bool, seen: list[State] | None = None
) -> list[Region]:
    """Run the steps; ``seen`` collects every state any region held on the way."""
    regions = [Region(name) for name in ("A", "B", "C")]
    for kind, arg in steps:
        if seen is not None:
            seen.extend(region.state for region in regions)
        if kind == "apply":
            regions[arg[0]].apply(arg[1])
        elif kind == "send":
            regions[arg[1]].receive(regions[arg[0]])
        else:
            exchange_all(regions)
            if fold:
                rnd = random.Random(arg)
                cut = {o: rnd.randint(0, seq) for o, seq in highest(regions[0].state).items()}
                for region in regions:
                    region.state = fold_at(region.state, cut)
    exchange_all(regions)
    return regions


def exchange_all(regions: list[Region]) -> None:
    for region in regions:
        for other in regions:
            region.receive(other)


@settings(max_examples=300, deadline=None)
@given(region_runs(resets=False))
def test_regions_count_each_increment_once(steps: list[tuple[str, Any]]) -> None:
    """Increments applied by several regions before they exchange them, merged in any grouping
    and folded at stable cuts, converge to the sum of the distinct increments."""
    regions = run_regions(steps, fold=True)
    distinct = {arg[1][3]: arg[1][1]["n"] for kind, arg in steps if kind == "apply"}
    assert all(region.state == regions[0].state for region in regions)
    assert value(regions[0].state) == sum(distinct.values())


@settings(max_examples=300, deadline=None)
@given(region_runs(resets=True))
def test_regions_with_resets_converge_to_what_they_would_without_folding(
    steps: list[tuple[str, Any]],
) -> None:
    """With resets as well, the regions converge, and to the same documents as when nobody
    ever folds."""
    folded = run_regions(steps, fold=True)
    unfolded = run_regions(steps, fold=False)
    assert all(region.state == folded[0].state for region in folded)
    assert document.visible(folded[0].state) == document.visible(unfolded[0].state)


def found_by_hypothesis(first: int, second: int) -> list[tuple[str, Any]]:
    """The run hypothesis found (issue 17/19): ``m2`` is applied by A and by B before they
    exchange it, A's patch removes ``n`` and erases A's copy, and the folds that follow must
    not bring ``n`` back; the late deletes lose to the patch."""
    return [
        ("apply", (0, ("delete", None, stamp(1, "d1", 0), "m0"))),
        ("barrier", 0),
        ("apply", (0, ("increment", {"n": first}, stamp(1, "d1", 1), "m1"))),
        ("barrier", 0),
        ("apply", (0, ("increment", {"n": second}, stamp(1, "d1", 2), "m2"))),
        ("apply", (1, ("increment", {"n": second}, stamp(1, "d1", 2), "m2"))),
        ("apply", (0, ("patch", {"n": None}, stamp(2, "d1", 3), "m3"))),
        ("barrier", 0),
        ("apply", (0, ("delete", None, stamp(1, "d1", 0), "m0"))),
        ("barrier", 0),
        ("apply", (0, ("delete", None, stamp(1, "d1", 5), "m5"))),
        ("barrier", 0),
    ]


@pytest.mark.parametrize(("first", "second"), [(0, 0), (5, 7)])
def test_a_removed_counter_stays_removed_after_folding(first: int, second: int) -> None:
    """Folding the erased copy of an increment that two regions applied does not bring a
    removed counter back (it came back as 0 whatever the amounts)."""
    folded = run_regions(found_by_hypothesis(first, second), fold=True)
    unfolded = run_regions(found_by_hypothesis(first, second), fold=False)
    assert document.visible(unfolded[0].state) == {}
    assert document.visible(folded[0].state) == {}


@pytest.mark.parametrize(("written", "shown"), [("x", {"n": "x"}), (None, {}), (10, {"n": 10})])
def test_a_base_that_only_covers_another_regions_copy_adds_nothing(
    written: Any, shown: dict[str, Any]
) -> None:
    """An increment applied by A and by B, erased by A's patch of the field: once folded at
    the cut both hold, B's base only covers B's copy (the sum is under A) and must not make
    the field a counter again (a written string read as 0)."""
    a, b = Region("A"), Region("B")
    a.apply(("increment", {"n": 4}, stamp(1), "m1"))
    b.apply(("increment", {"n": 4}, stamp(1), "m1"))
    a.apply(("patch", {"n": written}, stamp(2), "m2"))
    exchange_all([a, b])
    folded = fold_at(a.state, {"A": 2, "B": 1})
    assert folded["n"]["n"]["b"]["B"] == [1, 0, ""]  # the copy is covered, not counted
    assert document.visible(a.state) == shown
    assert document.visible(folded) == shown
    assert document.visible(document.join(folded, b.state)) == shown


def test_a_reset_erases_what_the_node_holds_and_late_increments_count() -> None:
    """A patch newest by stamp erases the increments the node applied before it; an increment
    stamped earlier that reaches the node after the patch counts on top of the new value."""
    node = Region("A")
    node.apply(("increment", {"n": 5}, stamp(1), "m1"), own_head_folds=True)
    node.apply(("patch", {"n": 0}, stamp(3), "m2"), own_head_folds=True)
    node.apply(("increment", {"n": 2}, stamp(2), "late"), own_head_folds=True)
    assert value(node.state) == 2


def test_an_older_reset_erases_nothing() -> None:
    """A patch older than the field's newest write loses whole: the counter keeps counting."""
    node = Region("A")
    node.apply(("patch", {"n": 10}, stamp(5), "m1"), own_head_folds=True)
    node.apply(("increment", {"n": 1}, stamp(6), "m2"), own_head_folds=True)
    node.apply(("patch", {"n": 0}, stamp(4), "m3"), own_head_folds=True)
    assert value(node.state) == 11


def test_state_stays_small_over_many_increments() -> None:
    """A node folding at its head keeps one base per origin, however many increments."""
    node = Region("A")
    for index in range(2_000):
        node.apply(("increment", {"n": 1}, stamp(index + 1), f"m{index}"), own_head_folds=True)
    assert value(node.state) == 2_000
    assert len(codec.dumps(node.state)) < 200


def test_a_counter_stored_before_folding_reads_as_one_base() -> None:
    """unpack turns a format-1 counter (increments by id) into one base with the same value."""
    legacy = {
        "f": {"n": [stamp(1), 10]},
        "s": "",
        "x": "",
        "n": {"n": {"m1": [stamp(2), 3], "m2": [stamp(3), 4]}},
    }
    state = document.unpack(legacy, {"n": 17})
    assert state["n"] == {"n": {"b": {counter.LEGACY_ORIGIN: [0, 7, stamp(3)]}}}
    assert document.visible(state) == {"n": 17}
    assert document.newest_write(state) == stamp(3)


@settings(max_examples=300, deadline=None)
@given(region_runs(resets=True), st.randoms(use_true_random=False))
def test_joins_of_any_states_regions_held_are_aci(
    steps: list[tuple[str, Any]], rnd: random.Random
) -> None:
    """Any three states that regions held (before or after folds, a stale one included: a
    delayed message) join commutatively, associatively and idempotently."""
    seen: list[State] = []
    run_regions(steps, fold=True, seen=seen)
    x, y, z = (rnd.choice(seen) for _ in range(3))
    join = document.join
    assert join(x, y) == join(y, x)
    assert join(x, join(y, z)) == join(join(x, y), z)
    assert join(join(x, y), y) == join(x, y)
