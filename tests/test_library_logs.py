"""Library log records on a node: warnings on one line without a traceback, errors whole."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import logging
from breakwater.obs.logging import configure
configure("info")
try:
    raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 5432)")
except ConnectionRefusedError as error:
    logging.getLogger("asyncpg.pool").warning("Failed to restore the pool floor", exc_info=error)
    logging.getLogger("asyncpg.pool").error("Pool broke", exc_info=error)
    logging.getLogger("breakwater.test").warning("ours", exc_info=error)
"""


def test_a_library_warning_is_one_line_and_an_error_keeps_its_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True, timeout=60
    )
    warning, error, ours = (json.loads(line) for line in done.stdout.splitlines())
    assert warning["logger"] == "asyncpg.pool" and warning["level"] == "warning"
    assert warning["event"] == (
        "Failed to restore the pool floor"
        " (ConnectionRefusedError: Connect call failed ('127.0.0.1', 5432))"
    )
    assert "exception" not in warning
    assert error["level"] == "error" and "Traceback" in error["exception"]
    assert "Traceback" in ours["exception"]  # the node's own records are left as they are
