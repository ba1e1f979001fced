"""``X-Forwarded-For`` names the client only when the peer is a configured trusted proxy.

Through a real node, single-process and ``--workers 2``: a loopback client rotating the header
keeps meeting its own sign-in limit when ``trusted_proxies`` is empty (the default), and gets a
bucket per forwarded address once loopback is a trusted proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow
BURST = 3
ATTEMPTS = 16


def _config(tmp_path: Path, trusted: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(
        f"[auth]\nrate_auth_per_ip = 0.001\nburst_auth_per_ip = {BURST}\n"
        f"trusted_proxies = [{trusted}]\n"
    )
    return path


def _statuses(url: str, forwarded: Callable[[int], str]) -> list[int]:
    """One refresh attempt per new connection, each with its own ``X-Forwarded-For``."""
    statuses = []
    for attempt in range(ATTEMPTS):
        with httpx.Client(base_url=url, timeout=10) as http:
            response = http.post(
                "/v1/auth/refresh",
                json={"refresh_token": "not-a-token"},
                headers={"X-Forwarded-For": forwarded(attempt)},
            )
        statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize("workers", ["1", "2"])
def test_rotating_forwarded_for_from_an_untrusted_peer_does_not_reset_the_limit(
    start_server: Callable[..., ServerProcess], tmp_path: Path, workers: str
) -> None:
    """Without trusted proxies, every attempt counts against the peer's own address."""
    config = _config(tmp_path, "")
    server = start_server(None, "--config", str(config), "--workers", workers)
    statuses = _statuses(server.url, lambda attempt: f"203.0.113.{attempt + 1}")
    # Each worker keeps its own buckets (one connection lands on either), so at most
    # BURST per worker get through; the rest are refused.
    assert statuses.count(429) >= ATTEMPTS - BURST * int(workers), statuses


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_trusted_proxy_forwarded_address_is_the_client(
    start_server: Callable[..., ServerProcess], tmp_path: Path, workers: str
) -> None:
    """With loopback trusted, each forwarded address has a bucket of its own."""
    config = _config(tmp_path, '"127.0.0.1"')
    server = start_server(None, "--config", str(config), "--workers", workers)
    rotating = _statuses(server.url, lambda attempt: f"203.0.113.{attempt + 1}")
    assert 429 not in rotating, rotating
    same = _statuses(server.url, lambda _: "198.51.100.7")
    assert same.count(429) >= ATTEMPTS - BURST * int(workers), same
