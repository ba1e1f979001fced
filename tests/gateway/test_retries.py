"""Through a real HAProxy: a request is sent again to another node only when that is safe.

Two stand-in nodes pass their ``/readyz`` checks and drop every other request without an
answer (as a node killed mid-request does), counting what reached them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from breakwater.gateway import GatewayPlan, HaproxyProcess, Node
from tests.conftest import free_port
from tests.gateway.conftest import FAST_CHECKS, TEST_TIMEOUTS

RETRIES = 3


class _Dropper(BaseHTTPRequestHandler):
    arrived: Counter[str]

    def _drop(self) -> None:
        if self.path == "/readyz":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.arrived[self.command] += 1
        self.close_connection = True  # no answer at all: HAProxy sees an empty response

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _drop

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def dropping_region(haproxy: str, tmp_path: Path) -> Iterator[tuple[str, Counter[str]]]:
    """A gateway over two dropping nodes; the count of requests they received, by method."""
    arrived: Counter[str] = Counter()
    handler = type("Dropper", (_Dropper,), {"arrived": arrived})
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    nodes = tuple(
        Node.from_url(f"http://127.0.0.1:{server.server_address[1]}", name=f"d{i}")
        for i, server in enumerate(servers)
    )
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
    for server in servers:
        server.shutdown()
        server.server_close()


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
