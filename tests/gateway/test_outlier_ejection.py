"""Passive outlier ejection: a node whose checks pass but whose requests fail is taken out of
the pool after ``error_limit`` consecutive errors, before any health check would notice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx

from breakwater.gateway import GatewayPlan, HaproxyProcess, HealthChecks, Node
from tests.conftest import free_port
from tests.gateway.conftest import TEST_TIMEOUTS
from tests.gateway.stand_ins import stand_in

ERROR_LIMIT = 3
SLOW_CHECKS = HealthChecks(interval=30.0, fast_interval=30.0, down_interval=30.0)
"""Checks too rare to bring the failing node back during the test."""


def test_a_node_failing_its_requests_is_ejected_after_the_error_limit(
    haproxy: str, tmp_path: Path
) -> None:
    """The failing node answers ERROR_LIMIT requests with 500, then is DOWN; the rest go to
    the healthy node."""
    failing: Counter[str] = Counter()
    healthy: Counter[str] = Counter()
    with stand_in("fail", failing) as bad, stand_in("ok", healthy) as good:
        plan = GatewayPlan(
            (Node.from_url(bad, name="bad"), Node.from_url(good, name="good")),
            bind_port=free_port(),
            checks=SLOW_CHECKS,
            timeouts=TEST_TIMEOUTS,
            error_limit=ERROR_LIMIT,
        )
        with HaproxyProcess(plan, tmp_path / "gateway", haproxy) as gateway:
            statuses = Counter(
                httpx.get(f"{gateway.url}/v1/collections/notes/docs/a", timeout=10).status_code
                for _ in range(30)
            )
            states = gateway.server_states()
    assert failing["GET"] == ERROR_LIMIT
    assert statuses == {500: ERROR_LIMIT, 200: 30 - ERROR_LIMIT}
    assert states["bad"].startswith("DOWN")
    assert states["good"].startswith("UP")
