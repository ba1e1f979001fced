"""Processes that outlive the command that started them, stopped later by PID from a file.

``breakwater cluster up`` returns while its nodes run on; ``cluster down``, another process,
stops them. A PID alone could by then name an unrelated process (PIDs are reused), so each
record keeps the process's start time in clock ticks (``/proc/PID/stat`` field 22): a signal
goes only to the process with that PID *and* that start time, never to anything by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_EXITS: dict[int, int] = {}
"""Wait statuses of our own children by PID, once reaped (:meth:`ProcessRecord.describe_exit`)."""


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or ``None`` if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; ``None`` if it is gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


@dataclass(frozen=True)
class ProcessRecord:
    """A started process as the cluster file keeps it."""

    pid: int
    ticks: int
    log: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ProcessRecord:
        return cls(int(raw["pid"]), int(raw["ticks"]), str(raw["log"]))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def alive(self) -> bool:
        """Whether this very process still runs (a zombie does not)."""
        fields = _stat(self.pid)
        return fields is not None and fields[0] != "Z" and int(fields[19]) == self.ticks

    def signal(self, signum: int) -> bool:
        """Send ``signum`` if this very process still runs; whether it was sent."""
        if not self.alive:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)
            return True
        return False

    def _reap(self) -> None:
        # Our own child becomes a zombie until waited for; someone else's is reaped by init.
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                _EXITS[pid] = status

    def describe_exit(self) -> str:
        """How the process ended, when it was our child: ``exit code N`` or ``signal NAME``."""
        self._reap()
        status = _EXITS.get(self.pid)
        if status is None:
            return "ended"
        if os.WIFSIGNALED(status):
            return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        return f"exit code {os.waitstatus_to_exitcode(status)}"

    def wait_exit(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the process to end; whether it did."""
        deadline = time.monotonic() + seconds
        while True:
            self._reap()
            if not self.alive:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (SIGCONT first, in case it is paused), then SIGKILL after ``grace``."""
        self.signal(signal.SIGCONT)
        if self.signal(signal.SIGTERM) and self.wait_exit(grace):
            return
        self.kill()

    def kill(self) -> None:
        """SIGKILL, and wait until it is gone."""
        self.signal(signal.SIGKILL)
        self.wait_exit(10.0)


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str]) -> ProcessRecord:
    """Start ``argv`` in a session of its own (a terminal's Ctrl-C does not reach it), its
    output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    ticks = start_ticks(process.pid)
    if ticks is None:  # it died at once; the caller's readiness wait shows the log
        ticks = -1
    # The Popen object is dropped on purpose: the process outlives this one, tracked by record.
    process.returncode = 0  # no "still running" warning when it is garbage-collected
    return ProcessRecord(process.pid, ticks, str(log))


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without ``BREAKWATER_*`` settings, plus ``extra``: a node
    runs exactly what the cluster says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    env.update(extra)
    return env
