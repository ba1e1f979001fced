"""History records survive a JSON-lines round trip; a malformed line is named."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from breakwater.chaos.checker import check
from breakwater.chaos.history import (
    CursorRecord,
    FaultEvent,
    HistoryError,
    Operation,
    Recorder,
    parse_lines,
    read_history,
    write_history,
)
from tests.chaos.histories import simulate


def test_round_trip_keeps_every_record(tmp_path: Path) -> None:
    """write_history then read_history gives the same operations, faults and cursor records,
    and the same verdict."""
    run = simulate(9, devices=3, steps=30)
    run.history.faults.append(FaultEvent(1.5, "start", "latency", "n1", {"ms": 50.0}))
    run.history.cursors += [
        CursorRecord("d9", 60.0, {}, resync="start", collections=("notes",)),
        CursorRecord("d9", 61.0, {"eu~1": 2}, {("notes", "a"): None}, "done", ("notes",)),
    ]
    path = tmp_path / "history.jsonl"
    write_history(run.history, path)
    again = read_history(path)
    assert sorted(again.operations, key=lambda o: o.op_id) == sorted(
        run.history.operations, key=lambda o: o.op_id
    )
    assert again.faults == run.history.faults
    assert again.cursors == run.history.cursors
    assert again.meta == {"seed": 9}
    healed, bound = run.healed_at, run.bound_s
    assert (
        check(again, run.replicas, healed_at=healed, bound_s=bound).to_json()
        == check(run.history, run.replicas, healed_at=healed, bound_s=bound).to_json()
    )


def test_recorder_streams_each_record_as_it_completes() -> None:
    """The recorder writes the meta line first, then one line per record, readable back."""
    ticks = iter([10.0, 10.5, 11.0, 12.0])
    out = io.BytesIO()
    recorder = Recorder({"scenario": "t"}, out, clock=lambda: next(ticks))
    invoked = recorder.now()
    recorder.add(
        Operation(recorder.next_id(), "d0", "read", "n1", invoked, recorder.now(), "unknown")
    )
    recorder.fault("start", "pause", "n2")
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 3
    history = parse_lines(lines)
    assert history.meta == {"scenario": "t"}
    assert history.operations[0].invoked_at == 0.5
    assert history.operations[0].completed_at == 1.0
    assert history.faults[0].at == 2.0


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("not json", "line 2"),
        ('{"type": "op", "op_id": 1}', "KeyError"),
        ('{"type": "nope"}', "unknown record type"),
        (
            '{"type":"op","op_id":1,"process":"d","kind":"push","target":"n","invoked_at":0,'
            '"completed_at":1,"outcome":"maybe"}',
            "outcome 'maybe'",
        ),
    ],
)
def test_a_bad_line_is_named(line: str, fragment: str) -> None:
    """A malformed record raises HistoryError with the line number and the cause."""
    with pytest.raises(HistoryError, match="line 2") as caught:
        parse_lines(['{"type": "meta"}', line])
    assert fragment in str(caught.value)
