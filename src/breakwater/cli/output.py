"""Where command reports go: a console whose tables stay whole when the output is piped.

Rich lays a table out for 80 columns when its stream is not a terminal, so a report piped to a
file, a pager or a CI log came out with every heading cut and every row wrapped. Reports are read
exactly there, so a stream that is not a terminal gets a width that holds the widest report
(``COLUMNS``, when set, still wins). ``--json`` stays the machine-readable form.
"""

from __future__ import annotations

import os

from rich.console import Console

PIPED_WIDTH = 240
"""Columns for a report that is not on a terminal: wider than any table the commands print."""


def report_console(*, stderr: bool = False) -> Console:
    """The console a command prints its report on (``stderr`` for progress and notices)."""
    console = Console(stderr=stderr)
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(stderr=stderr, width=PIPED_WIDTH)
