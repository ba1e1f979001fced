"""Behind the gateway, a node that trusts it rate-limits the client's real address: a client
cannot pick its own bucket by sending ``X-Forwarded-For`` (HAProxy replaces the header)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from breakwater.gateway import GatewayPlan, HaproxyProcess, Node
from tests.conftest import ServerProcess, free_port
from tests.gateway.conftest import FAST_CHECKS
from tests.process.test_forwarded_for import ATTEMPTS, BURST, _config, _statuses

pytestmark = pytest.mark.slow


def test_a_forged_forwarded_for_through_the_gateway_does_not_reset_the_limit(
    haproxy: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """The node trusts the gateway (loopback); rotating the header still meets one limit."""
    node = start_server(None, "--config", str(_config(tmp_path, '"127.0.0.1"')))
    plan = GatewayPlan(
        (Node.from_url(node.url, name="n1"),), bind_port=free_port(), checks=FAST_CHECKS
    )
    with HaproxyProcess(plan, tmp_path / "gateway", haproxy) as gateway:
        statuses = _statuses(gateway.url, lambda attempt: f"203.0.113.{attempt + 1}")
    assert statuses.count(429) >= ATTEMPTS - BURST, statuses
