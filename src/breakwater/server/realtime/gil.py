"""A short GIL switch interval while the fan-out sends, and Python's default otherwise.

A send pass holds the GIL for most of its time, in Python between system calls. The writer
thread's group commit needs the GIL at each of its SQLite calls; with Python's 5 ms switch
interval a commit made during a pass over 1,000 subscribers waited up to 5 ms at each, and p99
delivery was about 19 ms. While a pass runs the interval is 0.1 ms, which brings the p99 to
13 to 15 ms. Outside passes the default stays: under push load alone, forced switches every
0.1 ms cost a tenth to a sixth of the throughput (docs/benchmarks.md, Realtime, session 6).
"""

from __future__ import annotations

import sys
from types import TracebackType

DURING_PASSES = 0.0001


class QuickGilHandoff:
    """A context in which the switch interval is ``seconds``; nested and overlapping uses (several
    fan-outs in one process) restore the interval found before the first one."""

    def __init__(self, seconds: float = DURING_PASSES) -> None:
        self.seconds = seconds
        self._depth = 0
        self._saved = sys.getswitchinterval()

    def __enter__(self) -> None:
        if self._depth == 0:
            self._saved = sys.getswitchinterval()
            sys.setswitchinterval(self.seconds)
        self._depth += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            sys.setswitchinterval(self._saved)


DURING_SENDS = QuickGilHandoff()
"""The process's one handoff policy, shared by every fan-out in it."""
