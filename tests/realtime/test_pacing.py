"""Paced fan-out passes: a costly pass is followed by a pause, and what commits meanwhile leaves
together, each change once and in order (I5 holds whatever the pacing)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakwater.server.realtime.fanout import Subscriber
from breakwater.server.realtime.pacing import UNPACED, FanoutPacer
from breakwater.server.realtime.wakeup import Wakeup
from tests.realtime.test_fanout import Rig, SlowSocket, catch_up, running, seqs

shares = st.floats(min_value=0.01, max_value=1.0)
seconds = st.floats(min_value=0.0, max_value=10.0, allow_subnormal=False)
"""Pass times; subnormal ones would make the pause underflow to zero."""


@given(shares, st.floats(0, 0.01), st.floats(0, 1), seconds)
def test_a_pause_is_bounded_by_the_ceiling_and_by_the_share(
    share: float, floor: float, ceiling: float, spent: float
) -> None:
    """The fan-out takes at most ``share`` of the loop unless the ceiling cuts the pause."""
    pause = FanoutPacer(share, floor, ceiling).pause_after(spent)
    assert 0.0 <= pause <= ceiling
    if spent < floor:
        assert pause == 0.0
    elif pause < ceiling and spent > 0:
        assert spent / (spent + pause) == pytest.approx(share)


@given(seconds)
def test_an_unpaced_fan_out_never_waits(spent: float) -> None:
    assert UNPACED.pause_after(spent) == 0.0


def test_cheap_passes_never_wait() -> None:
    """A pass over a few subscribers (microseconds) is followed by no timer at all."""
    assert FanoutPacer().pause_after(0.0002) == 0.0
    assert FanoutPacer().pause_after(0.004) == pytest.approx(0.004)
    assert FanoutPacer().pause_after(5.0) == FanoutPacer().ceiling


@pytest.mark.parametrize("share", [0.0, -1.0, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        FanoutPacer(share=share)


async def test_commits_during_a_pause_leave_together_each_once_in_order(tmp_path: Path) -> None:
    """After a costly pass the sender waits; the commits made meanwhile arrive as one
    message, with nothing lost, duplicated or reordered."""
    # Pause 99 times the pass (capped at 1 s): 10 ms of writing makes a pause of 0.99 s.
    pacer = FanoutPacer(share=0.01, floor=0.0, ceiling=1.0)
    async with running(tmp_path, pacer) as rig:
        socket = await live_on(rig, SlowSocket(cost=0.01))
        await rig.write()
        deadline = time.monotonic() + 10
        while not socket.messages:
            assert time.monotonic() < deadline, "the first change never arrived"
            await asyncio.sleep(0.005)
        # The follower now pauses; ten commits, one after the other, land in the pause.
        started = time.monotonic()
        for _ in range(10):
            await rig.write()
        in_pause = time.monotonic() - started < 0.9
        deadline = time.monotonic() + 10
        while sum(b.changes for b in socket.messages) < 11:
            assert time.monotonic() < deadline, "the paced changes never arrived"
            await asyncio.sleep(0.01)
        assert seqs(socket.messages) == list(range(1, 12))
        assert socket.messages[-1].cursor == {rig.store.origin: 11}
        if in_pause:
            assert len(socket.messages) == 2


async def test_a_pause_does_not_delay_the_first_commit_after_quiet(tmp_path: Path) -> None:
    """A commit after an idle spell goes out in the next pass, with no pause before it."""
    async with running(tmp_path) as rig:
        socket = await live_on(rig, SlowSocket(cost=0.0))
        for expected in range(1, 4):
            await rig.write()
            deadline = time.monotonic() + 5
            while sum(b.changes for b in socket.messages) < expected:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.001)
        assert [b.changes for b in socket.messages] == [1, 1, 1]


async def live_on(rig: Rig, socket: SlowSocket) -> SlowSocket:
    """A live subscriber of every collection whose messages ``socket`` takes directly."""
    sub = Subscriber(None, {}, Wakeup())
    await catch_up(rig, sub)
    sub.direct = socket
    return socket
