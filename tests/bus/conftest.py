"""Bus URLs of every backend, each with a prefix of its own so parallel runs keep apart."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator

import pytest

from breakwater.bus import SCHEMES
from tests.services import NATS_URL, REDIS_URL, require_service


def with_prefix(url: str, prefix: str) -> str:
    """``url`` with ``?prefix=`` set."""
    return f"{url}{'&' if '?' in url else '?'}prefix={prefix}"


def bus_url_for(scheme: str) -> str:
    """A URL of ``scheme`` on the test services with a unique prefix (skips when down)."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    if scheme == "memory":
        return "memory://"
    if scheme == "redis":
        return with_prefix(require_service(REDIS_URL), prefix)
    return with_prefix(require_service(NATS_URL), prefix)


@pytest.fixture(params=SCHEMES)
def bus_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A bus URL of each backend (ipc in a short temporary directory: socket paths are short)."""
    if request.param == "ipc":
        with tempfile.TemporaryDirectory(prefix="bw-bus-") as short_dir:
            yield f"ipc://{short_dir}"
        return
    yield bus_url_for(request.param)
