"""``breakwater gateway haproxy --run`` becomes HAProxy: it serves, and its PID stops it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.gateway.stand_ins import stand_in


def test_run_serves_through_haproxy_and_stops_on_sigterm(haproxy: str, tmp_path: Path) -> None:
    """The command's process is HAProxy: requests reach the node; SIGTERM ends it."""
    arrived: Counter[str] = Counter()
    port = free_port()
    with stand_in("ok", arrived) as node:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "breakwater", "gateway", "haproxy", "--run"),
                *("--node", node, "--bind", f"127.0.0.1:{port}"),
                *("--out", str(tmp_path / "haproxy.cfg")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    status = httpx.get(f"http://127.0.0.1:{port}/v1/x", timeout=2).status_code
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the gateway never listened"
                    assert process.poll() is None, "the command exited"
                    time.sleep(0.1)
            assert status == 200
            assert arrived["GET"] == 1
            assert Path(f"/proc/{process.pid}/exe").resolve() == Path(haproxy).resolve()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
    assert (tmp_path / "haproxy.cfg").read_text().startswith("# Rendered by")
