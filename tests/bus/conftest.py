"""Bus URLs of every backend, each with a prefix of its own so parallel runs keep apart."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.js.errors import NotFoundError

from breakwater.bus import CHANNEL, SCHEMES
from breakwater.bus.jetstream import stream_name
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
    url = with_prefix(require_service(NATS_URL), prefix)
    if scheme == "nats+jetstream":
        _streams.append(stream_name(f"{prefix}.{CHANNEL}"))
        return url.replace("nats://", "nats+jetstream://", 1)
    return url


_streams: list[str] = []
"""JetStream streams the tests declared (memory-only, but they outlive their buses)."""


@pytest.fixture(autouse=True)
async def _delete_test_streams() -> AsyncIterator[None]:
    """Delete the JetStream streams a test's buses declared."""
    yield
    if not _streams:
        return
    client = await nats.connect(NATS_URL)
    try:
        js = client.jetstream()
        while _streams:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(_streams.pop())
    finally:
        await client.close()


@pytest.fixture(params=SCHEMES)
def bus_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A bus URL of each backend (ipc in a short temporary directory: socket paths are short)."""
    if request.param == "ipc":
        with tempfile.TemporaryDirectory(prefix="bw-bus-") as short_dir:
            yield f"ipc://{short_dir}"
        return
    yield bus_url_for(request.param)
