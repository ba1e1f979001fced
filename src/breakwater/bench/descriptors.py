"""Open-file limits: a benchmark that needs more descriptors than a process may hold says so.

A process here may open 20,000 files (``ulimit -Hn``); a benchmark holding one socket per
subscriber meets that ceiling at realistic scales. Each process raises its soft limit to the hard
one, and a scale the hard limit cannot hold stops the run before it starts, with one line naming
the limit, instead of ``Too many open files`` halfway through.
"""

from __future__ import annotations

import resource

HEADROOM = 256
"""Descriptors a process needs beside its sockets (files, pipes, the event loop, libraries)."""


class BenchStopped(RuntimeError):
    """A benchmark cannot go on; the message says why in one line (no traceback to read)."""


class MachineLimit(BenchStopped):
    """The machine cannot hold the scale asked for; the message says which limit and how to
    lift it."""


def require_descriptors(sockets: int, who: str) -> None:
    """Raise the soft open-file limit to the hard one; ``MachineLimit`` if ``sockets`` plus
    headroom still do not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + HEADROOM
    ceiling = hard if hard != resource.RLIM_INFINITY else needed
    if soft != resource.RLIM_INFINITY and soft < min(needed, ceiling):
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    if needed > ceiling:
        raise MachineLimit(
            f"{who} needs about {needed:,} open files in one process for {sockets:,} sockets;"
            f" this machine allows {hard:,} (ulimit -Hn): raise the hard limit"
            f" (limits.conf or LimitNOFILE) or use at most {max(0, hard - HEADROOM):,}"
        )
