"""What every long command owes the person who runs it: visible progress, and a clean exit.

Progress: each step is a line on stderr with the seconds since the start, so a pipe, a CI log
or ``nohup`` shows it too (a spinner alone draws nothing where stderr is not a terminal); on a
terminal a spinner names the current step as well.

Exit: a command that starts nodes, subscriber processes or engines stops them in ``finally``
blocks and context managers. Ctrl-C runs those (asyncio cancels the main task; plain code gets
``KeyboardInterrupt``), but SIGTERM and SIGHUP would end the process at once and leave the
children running and the temporary folders behind. :func:`stop_cleanly_on_signals` makes both
act like Ctrl-C, and :func:`exit_code` gives the conventional ``128 + signal`` exit status
(Ctrl-C already ends with 130).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from breakwater.cli.output import report_console

Progress = Callable[[str], None]

_received: list[int] = []


@contextmanager
def progress(first: str = "starting") -> Iterator[Progress]:
    """A progress callback for one long command (see the module docstring)."""
    console = report_console(stderr=True)
    started = time.monotonic()
    with console.status(first) as status:

        def step(text: str) -> None:
            status.update(text)
            console.print(
                f"[{time.monotonic() - started:7.1f} s] {text}", markup=False, highlight=False
            )

        step(first)
        yield step


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    # Whatever handles Ctrl-C now (asyncio's runner, or Python's KeyboardInterrupt) handles
    # this signal the same way, so every cleanup on the way out runs.
    signal.raise_signal(signal.SIGINT)


def stop_cleanly_on_signals() -> None:
    """From now on SIGTERM and SIGHUP end this process as Ctrl-C does.

    A shell starts a background job (``cmd &`` in a script) with SIGINT ignored, and Python
    keeps it so; then Ctrl-C, and the SIGTERM passed on as one, would do nothing at all. A
    long command takes Python's own Ctrl-C handling back."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _as_interrupt)


def exit_code() -> int | None:
    """``128 + signal`` when SIGTERM or SIGHUP ended the command, else None."""
    return 128 + _received[0] if _received else None
