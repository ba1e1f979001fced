"""Private engines for tests: skip where the binaries are missing, fail where CI needs them."""

from __future__ import annotations

import os

import pytest

from breakwater.chaos.engines import EngineMissing, postgres_bindir, redis_binary


def require_engines(*names: str) -> None:
    """Skip (or fail under ``BREAKWATER_REQUIRE_SERVICES=1``) unless every named engine
    (``postgres``, ``redis``) can be started here."""
    finders = {"postgres": postgres_bindir, "redis": redis_binary}
    try:
        for name in names:
            finders[name]()
    except EngineMissing as missing:
        reason = f"private {name} cannot run here: {missing.detail}"
        if os.environ.get("BREAKWATER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}; BREAKWATER_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(reason)
