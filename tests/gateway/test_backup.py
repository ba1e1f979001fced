"""Active-passive: a backup server (another region) gets requests only while every node of the
region is down, and none once a node is back."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from pathlib import Path

import httpx

from breakwater.gateway import GatewayPlan, HaproxyProcess, Node
from tests.conftest import free_port
from tests.gateway.conftest import FAST_CHECKS, TEST_TIMEOUTS
from tests.gateway.stand_ins import stand_in


def _get_all(url: str, count: int) -> list[int]:
    return [httpx.get(f"{url}/v1/x", timeout=10).status_code for _ in range(count)]


def test_the_backup_serves_only_while_the_region_is_down(haproxy: str, tmp_path: Path) -> None:
    """With the node up the backup gets nothing; with it gone, everything (and no error)."""
    primary: Counter[str] = Counter()
    backup: Counter[str] = Counter()
    with stand_in("ok", backup) as other_region, contextlib.ExitStack() as region:
        node = region.enter_context(stand_in("ok", primary))
        plan = GatewayPlan(
            (Node.from_url(node, name="n1"), Node.from_url(other_region, name="o", backup=True)),
            bind_port=free_port(),
            checks=FAST_CHECKS,
            timeouts=TEST_TIMEOUTS,
        )
        with HaproxyProcess(plan, tmp_path / "gateway", haproxy) as gateway:
            assert _get_all(gateway.url, 10) == [200] * 10
            assert (primary["GET"], backup["GET"]) == (10, 0)
            region.close()  # the region's only node is gone
            deadline = time.monotonic() + 10
            while not gateway.server_states()["n1"].startswith("DOWN"):
                assert time.monotonic() < deadline, "the node was never marked down"
                time.sleep(0.05)
            assert _get_all(gateway.url, 10) == [200] * 10
    assert (primary["GET"], backup["GET"]) == (10, 10)
