"""A benchmark past the machine's open-file limit stops with one clear line, before it starts;
up to the limit each process lifts its own soft limit to what the machine allows."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from breakwater.bench.descriptors import (
    HEADROOM,
    BenchStopped,
    MachineLimit,
    require_descriptors,
)
from breakwater.bench.realtime import wait_ready


def test_a_scale_past_the_hard_limit_is_refused_naming_the_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("this machine sets no hard open-file limit, so no scale is refused")
    with pytest.raises(MachineLimit) as refused:
        require_descriptors(hard, "the test")
    message = str(refused.value)
    assert f"{hard:,}" in message and f"{hard - HEADROOM:,}" in message
    assert "ulimit -Hn" in message


def test_the_soft_limit_is_raised_to_what_the_sockets_need() -> None:
    """In a process of its own, so the test run keeps its limits."""
    code = textwrap.dedent(
        """
        import resource
        from breakwater.bench.descriptors import require_descriptors
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        require_descriptors(1000, "the test")
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 1000 + 256)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_the_raw_send_baseline_holds_one_end_per_socket_in_this_process() -> None:
    """The receiving ends live in a child: with a soft limit of 1,000 descriptors, a round of
    700 sockets still runs (both ends in one process would need 1,400)."""
    code = textwrap.dedent(
        """
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (1000, 1000))
        from breakwater.bench._raw_sends import raw_send_round_ms
        print(raw_send_round_ms(700, rounds=3) > 0)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_bench_realtime_past_the_limit_is_one_error_line_and_exit_2() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("this machine sets no hard open-file limit, so no scale is refused")
    out = subprocess.run(
        [sys.executable, "-m", "breakwater", "bench", "realtime", "-n", str(hard), "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stdout + out.stderr
    assert "open files" in out.stdout and "ulimit -Hn" in out.stdout


class Lines:
    """A subscriber process that says what it is given, then times out."""

    def __init__(self, *lines: dict[str, Any]) -> None:
        self.lines = list(lines)

    async def line(self, seconds: float) -> dict[str, Any]:
        if not self.lines:
            raise TimeoutError
        return self.lines.pop(0)


async def test_connecting_subscribers_report_progress_until_ready() -> None:
    said: list[str] = []
    source = Lines(
        {"connecting": 500, "acknowledged": 450},
        {"connecting": 1000, "acknowledged": 1000},
        {"ready": 1000, "seconds": 3.0},
    )
    await wait_ready(source, 1000, said.append)
    assert said == [
        "1000 subscribers: 500 connecting, 450 subscribed",
        "1000 subscribers: 1,000 connecting, 1,000 subscribed",
    ]


async def test_subscribers_that_stall_stop_the_run_with_one_sentence() -> None:
    with pytest.raises(BenchStopped, match="stopped making progress"):
        await wait_ready(Lines({"connecting": 500, "acknowledged": 0}), 1000, lambda _: None)


async def test_subscribers_not_all_acknowledged_stop_the_run_saying_how_many() -> None:
    with pytest.raises(BenchStopped, match="only 999 of 1,000 subscriptions"):
        await wait_ready(Lines({"ready": 999, "seconds": 120.0}), 1000, lambda _: None)
