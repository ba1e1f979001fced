"""The proxy's HTTP control API and the ``breakwater chaos proxy`` command."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from breakwater.chaos.control import control_app
from breakwater.chaos.faults import Latency, parse_fault
from breakwater.chaos.proxy import ChaosProxy
from breakwater.core.errors import ValidationError
from tests.chaos.echo import EchoServer
from tests.conftest import free_port


@pytest.fixture
async def proxy() -> AsyncIterator[ChaosProxy]:
    echo = await EchoServer().start()
    async with ChaosProxy(("127.0.0.1", echo.port), name="n1") as chaos:
        yield chaos
    await echo.aclose()


@pytest.fixture
async def api(proxy: ChaosProxy) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=control_app({"n1": proxy}))
    async with httpx.AsyncClient(transport=transport, base_url="http://control") as client:
        yield client


async def test_put_switches_a_fault_on_and_delete_off(
    api: httpx.AsyncClient, proxy: ChaosProxy
) -> None:
    """PUT sets the fault on the proxy (as parsed), DELETE clears it."""
    response = await api.put("/proxies/n1/faults/latency", json={"ms": 80, "jitter_ms": 5})
    assert response.status_code == 200
    assert response.json()["faults"]["latency"] == {
        "ms": 80.0,
        "jitter_ms": 5.0,
        "direction": "both",
    }
    assert proxy.faults == {"latency": Latency(ms=80, jitter_ms=5)}
    response = await api.delete("/proxies/n1/faults/latency")
    assert response.status_code == 200
    assert proxy.faults == {}


async def test_heal_clears_every_fault(api: httpx.AsyncClient, proxy: ChaosProxy) -> None:
    """DELETE /faults heals the proxy."""
    await api.put("/proxies/n1/faults/partition", json={"direction": "upstream"})
    await api.put("/proxies/n1/faults/slicer", json={})
    assert set(proxy.faults) == {"partition", "slicer"}
    assert (await api.delete("/proxies/n1/faults")).json()["faults"] == {}
    assert proxy.faults == {}


async def test_list_describes_every_proxy(api: httpx.AsyncClient, proxy: ChaosProxy) -> None:
    """GET /proxies names each proxy with its addresses and counters."""
    body = (await api.get("/proxies")).json()
    assert body["n1"]["listen"] == proxy.address
    assert body["n1"]["stats"]["connections"] == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/proxies/n9/faults/latency", {"ms": 1}, 404, "no proxy named 'n9'"),
        ("/proxies/n1/faults/earthquake", {}, 404, "unknown fault 'earthquake'"),
        ("/proxies/n1/faults/latency", {}, 400, "latency.ms is required"),
        ("/proxies/n1/faults/latency", {"ms": -1}, 400, "latency.ms must be a finite number"),
        ("/proxies/n1/faults/latency", {"ms": 1, "foo": 2}, 400, "unknown latency parameters"),
        ("/proxies/n1/faults/partition", {"direction": "up"}, 400, "partition.direction"),
        ("/proxies/n1/faults/bandwidth", {"bytes_per_second": 0}, 400, "at least 1"),
        ("/proxies/n1/faults/slicer", {"size_bytes": 1.5}, 400, "whole number"),
        ("/proxies/n1/faults/latency", [1], 400, "JSON object"),
    ],
)
async def test_bad_requests_get_a_problem_and_change_nothing(
    api: httpx.AsyncClient, proxy: ChaosProxy, path: str, body: Any, status: int, detail: str
) -> None:
    """Unknown proxies and faults are 404, bad parameters 400, as problem+json; nothing changes."""
    response = await api.put(path, json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert proxy.faults == {}


async def test_invalid_json_is_a_400(api: httpx.AsyncClient) -> None:
    """A body that is not JSON is refused."""
    response = await api.put("/proxies/n1/faults/latency", content=b"{ms: 1")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


def test_parse_fault_rejects_booleans_as_numbers() -> None:
    """``true`` is not a number of milliseconds."""
    with pytest.raises(ValidationError, match="must be a number"):
        parse_fault("latency", {"ms": True})


@pytest.mark.slow
async def test_cli_proxy_is_controlled_over_http() -> None:
    """``breakwater chaos proxy``: traffic flows, a PUT adds latency, SIGINT stops it cleanly."""
    echo = await EchoServer().start()
    listen, control = free_port(), free_port()
    command = [
        sys.executable, "-m", "breakwater", "chaos", "proxy", "--name", "edge",
        "--listen", f"127.0.0.1:{listen}", "--upstream", f"127.0.0.1:{echo.port}",
        "--control", f"127.0.0.1:{control}",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{control}") as api:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await api.get("/proxies/edge")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "control API did not come up"
                await asyncio.sleep(0.1)
            response = await api.put("/proxies/edge/faults/latency", json={"ms": 150})
            assert response.status_code == 200
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            started = time.monotonic()
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            assert time.monotonic() - started >= 0.3
            writer.close()
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await echo.aclose()


def test_cli_refuses_a_bad_address() -> None:
    """A malformed --upstream is a usage error naming the option."""
    result = subprocess.run(
        [sys.executable, "-m", "breakwater", "chaos", "proxy", "--listen", "127.0.0.1:1",
         "--upstream", "nowhere"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--upstream" in result.stderr
