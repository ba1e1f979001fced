"""The quick GIL handoff: the short switch interval holds only while some fan-out sends."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from breakwater.server.realtime.fanout import Batch, Subscriber
from breakwater.server.realtime.gil import DURING_PASSES, QuickGilHandoff
from breakwater.server.realtime.wakeup import Wakeup
from tests.realtime.test_fanout import catch_up, running


def test_the_interval_is_short_inside_and_restored_after_overlapping_uses() -> None:
    """Two fan-outs of one process may overlap: the interval comes back after the last one."""
    before = sys.getswitchinterval()
    handoff = QuickGilHandoff(seconds=0.0002)
    handoff.__enter__()
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    handoff.__enter__()
    handoff.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(0.0002)  # the other one still sends
    handoff.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(before)


def test_an_error_in_a_pass_still_restores_the_interval() -> None:
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), QuickGilHandoff(seconds=0.0003):
        raise RuntimeError("a pass failed")
    assert sys.getswitchinterval() == pytest.approx(before)


async def test_sends_run_with_the_short_interval_and_the_node_with_the_default(
    tmp_path: Path,
) -> None:
    """Every direct write happens inside a pass; between passes the interval is Python's."""
    before = sys.getswitchinterval()
    seen: list[float] = []

    def socket(batches: list[Batch]) -> int:
        seen.append(sys.getswitchinterval())
        return len(batches)

    async with running(tmp_path) as rig:
        sub = Subscriber(None, {}, Wakeup())
        await catch_up(rig, sub)
        sub.direct = socket
        for _ in range(3):
            await rig.write()
        for _ in range(200):
            if len(seen) >= 1 and sub.generation == rig.fanout.recent.generation:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)
        assert sys.getswitchinterval() == pytest.approx(before)
    assert seen and all(value == pytest.approx(DURING_PASSES) for value in seen)
