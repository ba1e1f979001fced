"""External services for tests: skip with the reason where one is down, fail where CI needs it.

``.ci/run`` sets ``BREAKWATER_REQUIRE_SERVICES=1``; there a missing service fails the run instead
of skipping, so a skipped backend can never be counted as a passing one.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get(
    "BREAKWATER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BREAKWATER_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("BREAKWATER_TEST_NATS", "nats://127.0.0.1:4222")

_DEFAULT_PORTS = {"postgresql": 5432, "redis": 6379, "nats": 4222}


def require_service(url: str) -> str:
    """Return ``url`` if its TCP port answers; otherwise skip (or fail under CI) with the reason."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    try:
        socket.create_connection((host, port), timeout=1.0).close()
    except OSError as exc:
        reason = f"{parts.scheme} is not reachable on {host}:{port} ({exc.strerror or exc})"
        if os.environ.get("BREAKWATER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}; BREAKWATER_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(reason)
    return url


def require_program(name: str) -> str:
    """The path of program ``name``; if it is not on PATH, skip (or fail under CI) saying so."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (.ci/run installs it)"
        if os.environ.get("BREAKWATER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}; BREAKWATER_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(reason)
    return path


def require_installed(path: Path, what: str) -> Path:
    """``path`` if it exists; otherwise skip (or fail under CI) saying that ``what`` is missing."""
    if not path.exists():
        reason = f"{what} is not installed ({path} is missing; .ci/run installs it)"
        if os.environ.get("BREAKWATER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}; BREAKWATER_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(reason)
    return path
