"""Cache URLs of every backend that keeps what it is given, each with a prefix of its own."""

from __future__ import annotations

import uuid

import pytest

from tests.services import REDIS_URL, require_service


def cache_url_for(backend: str) -> str:
    """A URL of ``backend`` with a unique prefix (skips when the service is down)."""
    if backend == "memory":
        return "memory://"
    return f"{require_service(REDIS_URL)}?prefix=test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str:
    """A cache URL of each keeping backend."""
    return cache_url_for(request.param)
