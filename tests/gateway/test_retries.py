"""Through a real HAProxy: a request is sent again to another node only when that is safe.

Two stand-in nodes pass their ``/readyz`` checks and drop every other request without an
answer (as a node killed mid-request does), counting what reached them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from breakwater.gateway import GatewayPlan, HaproxyProcess, Node
from tests.conftest import free_port
from tests.gateway.conftest import FAST_CHECKS, TEST_TIMEOUTS
from tests.gateway.stand_ins import stand_in

RETRIES = 3


@pytest.fixture
def dropping_region(haproxy: str, tmp_path: Path) -> Iterator[tuple[str, Counter[str]]]:
    """A gateway over two dropping nodes; the count of requests they received, by method."""
    arrived: Counter[str] = Counter()
    with stand_in("drop", arrived) as first, stand_in("drop", arrived) as second:
        nodes = (Node.from_url(first, name="d0"), Node.from_url(second, name="d1"))
        plan = GatewayPlan(
            nodes,
            bind_port=free_port(),
            checks=FAST_CHECKS,
            timeouts=TEST_TIMEOUTS,
            retries=RETRIES,
            error_limit=1000,  # keep both in the pool: this test counts attempts
        )
        with HaproxyProcess(plan, tmp_path / "gateway", haproxy) as gateway:
            yield gateway.url, arrived


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    attempts: int


SAFE = 1 + RETRIES
CASES = [
    Case("GET", "/v1/collections/notes/docs/a", (), SAFE),
    Case("HEAD", "/v1/collections/notes/docs/a", (), SAFE),
    Case("POST", "/v1/sync/push", (), SAFE),
    Case("PUT", "/v1/collections/notes/docs/a", (("Idempotency-Key", "k1"),), SAFE),
    Case("DELETE", "/v1/collections/notes/docs/a", (("Idempotency-Key", "k2"),), SAFE),
    Case("PUT", "/v1/collections/notes/docs/a", (), 1),
    Case("PATCH", "/v1/collections/notes/docs/a", (), 1),
    Case("DELETE", "/v1/collections/notes/docs/a", (), 1),
    Case("POST", "/v1/auth/refresh", (("Idempotency-Key", "k3"),), 1),
    Case("POST", "/v1/auth/login", (), 1),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda case: f"{case.method} {case.path} {case.headers}"
)
def test_only_requests_safe_to_repeat_are_sent_again(
    dropping_region: tuple[str, Counter[str]], case: Case
) -> None:
    """Reads, pushes and keyed document writes are retried; other writes reach a node once."""
    url, arrived = dropping_region
    body = None if case.method in ("GET", "HEAD", "DELETE") else b'{"mutations": []}'
    response = httpx.request(
        case.method, url + case.path, content=body, headers=dict(case.headers), timeout=20
    )
    assert response.status_code == 502
    assert arrived[case.method] == case.attempts


@pytest.mark.parametrize(("kib", "attempts"), [(8, SAFE), (64, 1)])
def test_a_push_is_sent_again_only_if_it_fits_the_gateways_buffer(
    dropping_region: tuple[str, Counter[str]], kib: int, attempts: int
) -> None:
    """HAProxy keeps a copy of a body up to its 16 KiB buffer: a larger push is not resent
    (the client's retry covers it, docs/gateway.md)."""
    url, arrived = dropping_region
    body = b'{"mutations": [], "pad": "' + b"x" * (kib * 1024) + b'"}'
    response = httpx.post(f"{url}/v1/sync/push", content=body, timeout=20)
    assert response.status_code == 502
    assert arrived["POST"] == attempts
