"""The access line: the same JSON line structlog wrote, redacted, at ``info`` only."""

from __future__ import annotations

import json
import subprocess
import sys

from breakwater.obs.access_log import AccessLog

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLWhlcmU"
KEY = "bwk_0123abcd_s3cr3t-part"

# A process that logs one request through the node's access line and one through structlog's
# configured chain, with the same fields, as `breakwater serve` configures them.
BOTH = """
from breakwater.obs.access_log import log_request
from breakwater.obs.logging import configure, get_logger

configure("info")
fields = dict(method="PUT", path="/v1/collections/n/docs/a", route="/v1/collections/{c}/docs/{d}",
              status=201, duration_ms=1.25, request_id="f00-1")
log_request(**fields)
get_logger("breakwater.access").info("request", **fields)
"""


def test_the_access_line_is_the_line_structlog_renders() -> None:
    """Same keys in the same order and the same values; only the timestamp differs."""
    done = subprocess.run(
        [sys.executable, "-c", BOTH], capture_output=True, text=True, timeout=60, check=True
    )
    direct, chained = (json.loads(line) for line in done.stdout.splitlines())
    assert list(direct) == list(chained)
    assert direct["timestamp"].endswith("Z") and direct["timestamp"][:4].isdigit()
    assert {**direct, "timestamp": None} == {**chained, "timestamp": None}


def test_a_token_or_key_in_the_path_or_request_id_is_redacted() -> None:
    """What a caller chose (the path, its ``X-Request-ID``) is redacted like every line."""
    lines: list[bytes] = []
    access = AccessLog(lines.append, enabled=True, trace_ids=False)
    access.write("GET", f"/v1/collections/n/docs/{TOKEN}", "/r", 200, 1.0, f"{KEY}")
    access.write("GET", "/v1/collections/n/docs/plain", "/r", 200, 1.0, "id-2")
    secret, plain = (json.loads(line) for line in lines)
    assert TOKEN not in lines[0].decode() and KEY not in lines[0].decode()
    assert secret["path"] == "/v1/collections/n/docs/[redacted]"
    assert secret["request_id"] == "[redacted]"
    assert plain["path"] == "/v1/collections/n/docs/plain" and plain["request_id"] == "id-2"


def test_no_access_line_above_info() -> None:
    """A node configured to log at ``warning`` writes no access line, and still its warnings."""
    program = BOTH.replace('configure("info")', 'configure("warning")') + (
        "\nget_logger('x').warning('still here')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert [json.loads(line)["event"] for line in done.stdout.splitlines()] == ["still here"]
