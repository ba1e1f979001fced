"""The checker: clean histories pass; each planted anomaly is caught by the check it violates."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.chaos.checker import (
    CheckResult,
    DocState,
    ReplicaState,
    Verdict,
    check,
    divergences,
    fold,
)
from breakwater.chaos.history import CursorRecord, MutationRecord, Operation
from tests.chaos.histories import ANOMALIES, Run, plant, simulate


def verdict(run: Run) -> Verdict:
    return check(run.history, run.replicas, healed_at=run.healed_at, bound_s=run.bound_s)


def mutation(mid: str, op: str, data: dict[str, object] | None, stamp: int) -> MutationRecord:
    return MutationRecord(mid, "c", "x", op, data, f"{stamp:013d}-0000-d")


def test_fold_applies_in_hlc_order_whatever_the_arrival() -> None:
    """The model: a late-arriving older patch loses to a newer set; increments add up."""
    mutations = [
        mutation("m3", "patch", {"a": 3}, 3),
        mutation("m1", "patch", {"a": 1, "b": 1}, 1),
        mutation("m2", "set", {"a": 2}, 2),
        mutation("m4", "increment", {"n": 2}, 4),
        mutation("m5", "increment", {"n": 5}, 5),
    ]
    assert fold(mutations) == {"a": 3, "n": 7}
    assert fold([*mutations, mutation("m6", "delete", None, 6)]) is None
    assert fold(
        [mutation("m7", "patch", {"a": 1, "b": 2}, 1), mutation("m8", "patch", {"b": None}, 2)]
    ) == {"a": 1}


@pytest.mark.parametrize("seed", range(5))
def test_a_clean_run_passes(seed: int) -> None:
    """A correct run, with failed and unknown pushes and retries, passes every check."""
    result = verdict(simulate(seed))
    assert result.passed, result.render()
    assert all(r.checked > 0 for r in result.results)


@pytest.mark.parametrize("anomaly", ANOMALIES)
def test_each_planted_anomaly_is_caught(anomaly: str) -> None:
    """A lost write, a lost effect, a duplicate in the feed, a counter counted twice, a divergent
    replica, a stale read, a feed seq skipped or reused and a device's cursor that skips, moves
    back or holds what no node has each fail the check they violate, naming what is wrong."""
    run = simulate(11)
    expected = plant(run, anomaly, random.Random(3))
    result = verdict(run)
    assert not result.result(expected).passed, result.render()
    assert "FAIL" in result.render()


def test_writer_tokens_need_not_be_mutation_ids() -> None:
    """Notes that carry the device's own writer tokens: a clean run passes (each read's token
    names the write it shows), and a stale read is still caught."""
    clean = verdict(simulate(11, tokens=True))
    assert clean.passed, clean.render()
    assert clean.result("read_your_writes").checked > 0
    run = simulate(11, tokens=True)
    assert plant(run, "stale", random.Random(3)) == "read_your_writes"
    [stale] = verdict(run).result("read_your_writes").anomalies
    assert "older than its own" in stale.message


def test_a_lost_write_names_the_operation() -> None:
    """The verdict of a lost acknowledged write names the mutation, the device and the op."""
    run = simulate(2)
    node = run.node("n1")
    victim = node.applied[0]  # type: ignore[index]
    node.applied = node.applied[1:]  # type: ignore[index]
    text = verdict(run).render()
    assert f"acknowledged mutation {victim}" in text
    assert "missing from n1's feed" in text


def test_a_refused_mutation_that_took_effect_is_caught() -> None:
    """A mutation whose every push failed must not be in a feed."""
    run = simulate(4)
    refused = MutationRecord("d0.refused", "notes", "d0", "patch", {"w": "d0.refused"}, "0")
    run.history.operations.append(
        Operation(999, "d0", "push", "n1", 50.0, 50.1, "failed", (refused,))
    )
    run.node("n2").applied.append(refused.mutation_id)  # type: ignore[union-attr]
    result = verdict(run)
    assert not result.result("exactly_once").passed
    assert "refused on every push" in result.render()


def test_a_phantom_mutation_is_caught() -> None:
    """A feed entry that no client sent is an anomaly."""
    run = simulate(5)
    run.node("n1").applied.append("ghost.1")  # type: ignore[union-attr]
    assert "no client sent it" in verdict(run).render()


def test_a_mutation_met_under_two_origins_counts_once_under_one_it_is_twice() -> None:
    """Regions that both applied a mutation (a device re-pushed it after a failover) keep one
    feed position per origin: that passes; the same mutation twice under one origin fails."""
    run = simulate(5)
    node = run.node("n1")
    assert node.applied and node.positions
    mid = node.applied[0]
    node.applied.append(mid)
    node.positions.append(("other~region", 1))
    assert verdict(run).result("exactly_once").passed
    node.applied.append(mid)
    node.positions.append(("other~region", 2))
    result = verdict(run).result("exactly_once")
    assert not result.passed
    assert f"{mid} appears 3 times in n1's feed" in verdict(run).render()


def test_convergence_compares_versions_but_in_reports_that_did_not() -> None:
    """A replica with the same data under another version (another replicated state) diverges;
    a report written before versions were compared across regions is re-checked by data."""
    run = simulate(6)
    replica = run.replicas[-1]
    key = next(k for k, d in replica.docs.items() if d.version)
    replica.docs[key] = DocState(replica.docs[key].data, "another-version")
    assert not verdict(run).result("convergence").passed
    old_report = check(
        run.history, run.replicas, healed_at=run.healed_at, bound_s=run.bound_s, versions=False
    )
    assert old_report.result("convergence").passed
    replica.docs[key] = DocState({"other": 1}, "another-version")
    old_report = check(
        run.history, run.replicas, healed_at=run.healed_at, bound_s=run.bound_s, versions=False
    )
    assert not old_report.result("convergence").passed


LIVE = DocState({"title": "a", "n": 5}, "v1", {"n": {"d1.1": 2, "d2.1": 3}})
"""One document as region eu holds it: a field and a counter."""


@pytest.mark.parametrize(
    ("us", "how"),
    [
        (DocState({"title": "b", "n": 5}, "v2", LIVE.counters), "in data"),
        (DocState(None, "v2"), "in deletion"),
        (None, "in deletion"),  # us lacks a live document
        (DocState({"title": "a", "n": 7}, "v2", {"n": {"d1.1": 2, "d2.1": 5}}), "in a counter"),
        (DocState(LIVE.data, "v2", LIVE.counters), "in version"),
    ],
    ids=["data", "deleted", "missing", "counter", "version"],
)
def test_two_regions_that_differ_in_any_way_diverge(us: DocState | None, how: str) -> None:
    """Regions differing in data, deletion, a counter's value or only in the replicated state
    (the version) fail convergence, naming how they differ."""
    eu = ReplicaState("eu-1", "node", {("todos", "t1"): LIVE})
    other = ReplicaState("us-1", "node", {} if us is None else {("todos", "t1"): us})
    assert divergences([eu, ReplicaState("eu-2", "node", {("todos", "t1"): LIVE})]) == []
    [anomaly] = divergences([eu, other])
    assert f"todos/t1 diverges {how}" in anomaly.message


def test_a_tombstone_one_region_purged_is_no_divergence() -> None:
    """A deleted document one region still holds as a tombstone and another purged agrees."""
    eu = ReplicaState("eu-1", "node", {("todos", "t1"): DocState(None, "v9")})
    us = ReplicaState("us-1", "node", {})
    assert divergences([eu, us]) == []


def test_convergence_late_past_the_bound_fails() -> None:
    """Identical replicas read after the bound still fail convergence."""
    run = simulate(6)
    run.replicas[-1].taken_at = run.healed_at + run.bound_s + 1
    result = verdict(run)
    assert not result.result("convergence").passed
    assert "the bound is" in result.render()


def test_a_counter_state_counting_an_unsent_mutation_is_caught() -> None:
    """With the pulled state, a counter contribution of an id nobody sent is an anomaly."""
    run = simulate(7)
    node = run.node("n1")
    key = next(k for k, d in node.docs.items() if d.counters)
    doc = node.docs[key]
    node.docs[key] = DocState(doc.data, doc.version, {"n": {**doc.counters["n"], "ghost": 0}})  # type: ignore[index]
    assert not verdict(run).result("exactly_once").passed


def test_an_empty_history_passes() -> None:
    """Nothing sent, nothing stored: nothing to refute."""
    from breakwater.chaos.history import History

    replicas = [ReplicaState("n1", "node", {}, [], 0.0), ReplicaState("d0", "device", {})]
    assert check(History(), replicas, healed_at=0.0, bound_s=1.0).passed


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), devices=st.integers(1, 5), steps=st.integers(0, 80))
def test_random_clean_runs_pass(seed: int, devices: int, steps: int) -> None:
    """Any correct run passes."""
    result = verdict(simulate(seed, devices, steps))
    assert result.passed, result.render()


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    devices=st.integers(1, 5),
    steps=st.integers(0, 80),
    anomaly=st.sampled_from(ANOMALIES),
    where=st.integers(0, 10**6),
)
def test_a_random_planted_anomaly_is_always_caught(
    seed: int, devices: int, steps: int, anomaly: str, where: int
) -> None:
    """One anomaly of any kind, planted anywhere, fails the check it violates."""
    run = simulate(seed, devices, steps)
    expected = plant(run, anomaly, random.Random(where))
    result = verdict(run)
    assert not result.result(expected).passed, (anomaly, result.render())


def test_replicas_survive_a_json_round_trip() -> None:
    """Final states written as JSON read back to the same verdict (planted anomaly included)."""
    from breakwater.chaos.checker import parse_replicas, replicas_json
    from breakwater.core import codec

    run = simulate(13)
    plant(run, "duplicate_count", random.Random(1))
    raw = codec.loads(codec.dumps(replicas_json(run.replicas, run.healed_at, run.bound_s)))
    replicas, healed_at, bound_s = parse_replicas(raw)
    again = check(run.history, replicas, healed_at=healed_at, bound_s=bound_s)
    assert again.to_json() == verdict(run).to_json()
    assert not again.passed


def cursors(run: Run) -> CheckResult:
    return verdict(run).result("device_cursors")


@pytest.mark.parametrize(
    ("anomaly", "named"),
    [
        ("cursor_skips", ("is absent, lacking", "less than the")),
        ("cursor_back", ("cursor moved back",)),
        ("device_ahead", ("took effect in no final feed", "more than the")),
    ],
)
def test_each_device_cursor_anomaly_is_named(anomaly: str, named: tuple[str, ...]) -> None:
    """A cursor that covers a change the device does not hold, a cursor lower than the one
    before without a resync, and a held state with a write no final feed has each fail (f)."""
    run = simulate(11)
    assert cursors(run).passed
    assert plant(run, anomaly, random.Random(3)) == "device_cursors"
    result = cursors(run)
    assert not result.passed
    messages = " ".join(a.message for a in result.anomalies)
    assert any(words in messages for words in named), messages


def last_record(run: Run, device: str) -> CursorRecord:
    return next(r for r in reversed(run.history.cursors) if r.process == device)


def test_only_a_resync_moves_a_cursor_back_and_a_pulled_state_may_be_ahead() -> None:
    """After a recorded resync start the cursor may restart low, and a page may bring states
    newer than its cursor (a pull returns each document's current state): (f) passes; the same
    page without the resync start fails."""
    run = simulate(12)
    final = last_record(run, "d0")
    ahead = CursorRecord("d0", 90.0, {"r1": 1}, dict(final.docs))
    run.history.cursors += [CursorRecord("d0", 89.0, {}, resync="start"), ahead]
    result = cursors(run)
    assert result.passed, result.anomalies
    del run.history.cursors[-2]
    assert "cursor moved back" in cursors(run).anomalies[0].message


def test_a_lost_store_s_state_is_held_only_until_a_resync_ends() -> None:
    """A device whose cursor covers a change no final feed has (its store was lost before it
    replicated) may hold a write no region kept; once a full resync ends, holding it fails."""
    run = simulate(13)
    final = last_record(run, "d1")
    lost = MutationRecord("d1.lost", "notes", "d1", "patch", {"w": "d1.lost"}, "9" * 13)
    run.history.operations.append(
        Operation(999, "d1", "push", "eu-1", 80.0, None, "unknown", (lost,))
    )
    ghost: dict[tuple[str, str], dict[str, object] | None] = {("notes", "d1"): {"w": "d1.lost"}}
    beyond = {**final.cursor, "eu~lost": 4}
    run.history.cursors.append(CursorRecord("d1", 90.0, beyond, ghost))
    assert cursors(run).passed, cursors(run).anomalies
    run.history.cursors += [
        CursorRecord("d1", 91.0, {}, resync="start"),
        CursorRecord("d1", 92.0, final.cursor, {}, resync="done"),
    ]
    [anomaly] = cursors(run).anomalies
    assert "'d1.lost', a write that took effect in no final feed" in anomaly.message


def test_runs_recorded_without_cursors_or_positions_are_judged_as_before() -> None:
    """A history without cursor records checks nothing in (f); replicas without feed positions
    (an older report) leave (f) unjudged, whatever the records say."""
    run = simulate(14)
    plant(run, "cursor_back", random.Random(1))
    for node in (r for r in run.replicas if r.kind == "node"):
        node.positions = None
    assert cursors(run).passed and cursors(run).checked == 0
    run.history.cursors.clear()
    assert cursors(run).checked == 0


def test_an_increment_under_two_origins_is_one_effect_for_a_device() -> None:
    """A device whose cursor covers an increment at its positions under two origins (applied in
    two regions before they met) needs it counted once: (f) passes."""
    run = simulate(15)
    applied = set(run.node("n1").applied or ())
    sent = run.history.mutations().values()
    increment = next(m for m in sent if m.op == "increment" and m.mutation_id in applied)
    for node in (r for r in run.replicas if r.kind == "node"):
        assert node.applied is not None and node.positions is not None
        node.applied.append(increment.mutation_id)
        node.positions.append(("us~1", 1))
    final = last_record(run, "d0")
    run.history.cursors.append(CursorRecord("d0", 90.0, {**final.cursor, "us~1": 1}))
    result = cursors(run)
    assert result.passed, result.anomalies
