"""``breakwater drill database-promotion``: how a drill judges the feed, and one short drill."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from breakwater.chaos.promotion_drill import DrillPlan, _judge, _Load, run_drill
from tests.chaos.engines import require_engines


def load_with(acks: dict[str, tuple[int, float, float]]) -> _Load:
    """Writers that got ``acks`` (mutation id: seq, sent, acknowledged)."""
    load = _Load(httpx.AsyncClient())
    load.acks.update(acks)
    return load


def test_the_judge_counts_what_the_feed_lost_repeated_skipped_and_reused() -> None:
    """An async standby's promotion can lose the tail of the acknowledged writes and give their
    seqs to new ones: each shows in its own count, and the failover time is measured from the
    loss and from the promotion to the first write sent after the old primary was dead."""
    acks = {
        "a": (1, 0.5, 1.5),
        "b": (2, 1.0, 2.0),
        "lost": (3, 2.0, 2.5),  # acknowledged by the old primary, never replicated
        "c": (3, 5.5, 6.5),  # took the lost write's seq on the new primary
        "d": (5, 6.0, 7.0),
    }
    feed = [("a", 1), ("b", 2), ("c", 3), ("d", 5), ("d", 5)]
    result = _judge(
        DrillPlan("async"), load_with(acks), feed, started=0.0, killed=3.0, dead=3.5, promoted=6.0
    )
    assert (result.acknowledged, result.lost, result.applied_twice) == (5, 1, 1)
    assert (result.seqs_skipped, result.seqs_reused) == (1, 1)  # 4 never used; 3 given to c
    assert result.death_to_write_s == pytest.approx(3.5)  # c, sent at 5.5, acknowledged at 6.5
    assert result.promotion_to_write_s == pytest.approx(0.5)
    assert result.pushes_per_s == pytest.approx(3 / 2.0)  # a, b and lost, from 1.0 to 3.0


def test_a_seq_given_to_another_change_than_the_acknowledged_one_is_reused() -> None:
    """An acknowledgement whose seq now names another mutation counts as reused, even when
    the acknowledged mutation itself is in the feed at another seq."""
    acks = {"a": (1, 0.0, 0.1), "b": (2, 0.0, 0.2)}
    feed = [("a", 1), ("c", 2), ("b", 3)]
    result = _judge(DrillPlan(), load_with(acks), feed, started=0, killed=1, dead=1, promoted=1)
    assert (result.seqs_reused, result.seqs_skipped, result.lost) == (1, 0, 0)
    assert result.death_to_write_s is None


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_short_drill_with_a_synchronous_standby_loses_nothing(tmp_path: Path) -> None:
    """One drill: writes resume after the promotion, and none acknowledged is lost, applied
    twice, skipped or reused."""
    require_engines("postgres")
    plan = DrillPlan("sync", writers=4, warmup_s=2.0, promote_after_s=0.5, settle_s=2.0)
    result = await run_drill(plan, tmp_path)
    assert result.promotion_to_write_s is not None and result.acknowledged > 0
    assert (result.lost, result.applied_twice, result.seqs_skipped, result.seqs_reused) == (
        0,
        0,
        0,
        0,
    )
