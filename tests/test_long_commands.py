"""Long commands show their progress where nobody watches a terminal, and a signal stops
everything they started (issue: ``bench realtime`` ran for minutes in silence and, when
interrupted, left its node and subscriber processes running and its temporary folder behind)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

pytestmark = pytest.mark.slow

MEASURING = "writes/s for"
"""The progress line of the step in which nodes and subscribers all run."""
FLOOR_MEASURING = "floor: writing"
"""The progress line of the step in which the fan-out floor and subscribers run."""


def descendants(root: int) -> set[int]:
    """Every live process below ``root``."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def lines_of(stream: IO[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The lines ``stream`` yields, read by a thread as they come; the thread closes the
    stream at its end."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        with stream:
            for line in stream:
                lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def end(process: subprocess.Popen[str], reader: threading.Thread) -> None:
    """Kill ``process`` if the test left it running, and let its output's reader finish."""
    if process.poll() is None:
        process.kill()
        process.wait()
    reader.join(timeout=30)


def still_alive(pids: set[int], seconds: float = 10) -> list[int]:
    """Those of ``pids`` still alive after up to ``seconds`` of waiting for them to go."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def wait_for_line(lines: queue.Queue[str], text: str, seconds: float) -> list[str]:
    """The lines up to the first that contains ``text``; fails after ``seconds``."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            continue
        if text in seen[-1]:
            return seen
    pytest.fail(f"no progress line with {text!r} within {seconds:g} s; got {seen}")


@pytest.fixture
def started() -> Iterator[list[int]]:
    """PIDs the test saw; any still alive at the end are killed (by PID) after the test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("signum", "status"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM),
        (signal.SIGHUP, 128 + signal.SIGHUP),
        (signal.SIGINT, 128 + signal.SIGINT),
    ],
    ids=["SIGTERM", "SIGHUP", "SIGINT"],
)
def test_bench_realtime_shows_progress_and_stops_what_it_started_on_a_signal(
    tmp_path: Path, started: list[int], signum: signal.Signals, status: int
) -> None:
    """Progress lines arrive on a pipe; after the signal no node or subscriber process is
    left and the temporary folder is gone."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "breakwater", "bench", "realtime", "-n", "2"]
    command += ["--runs", "1", "--seconds", "60", "--rate", "20"]
    bench = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"TMPDIR": str(scratch)},
        start_new_session=True,  # the signal reaches the bench alone, not its children
        # As a script's background job starts it: SIGINT ignored (the bench takes it back).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    started.append(bench.pid)
    assert bench.stderr is not None
    lines, reader = lines_of(bench.stderr)
    try:
        wait_for_line(lines, MEASURING, 120)
        children = descendants(bench.pid)
        started.extend(children)
        assert len(children) >= 2  # the node and the subscribers' process
        assert any(scratch.iterdir())  # the run's folder exists while it runs
        os.kill(bench.pid, signum)
        assert bench.wait(timeout=60) == status
    finally:
        end(bench, reader)
    assert still_alive(children) == []
    assert list(scratch.iterdir()) == []


def test_bench_realtime_stops_the_fanout_floor_and_its_subscribers_on_a_signal(
    started: list[int],
) -> None:
    """A signal while the floor is measured leaves neither the floor nor its subscribers."""
    command = [sys.executable, "-m", "breakwater", "bench", "realtime", "-n", "2"]
    # The floor is measured after the node, for as long: short, the signal comes at its start.
    command += ["--runs", "1", "--seconds", "10", "--rate", "20"]
    bench = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started.append(bench.pid)
    assert bench.stderr is not None
    lines, reader = lines_of(bench.stderr)
    try:
        wait_for_line(lines, FLOOR_MEASURING, 120)
        children = descendants(bench.pid)
        started.extend(children)
        assert len(children) >= 2  # the floor and the subscribers' process
        os.kill(bench.pid, signal.SIGTERM)
        assert bench.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        end(bench, reader)
    assert still_alive(children) == []
