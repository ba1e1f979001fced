"""Running HAProxy in the foreground with a rendered configuration, and talking to it.

``breakwater gateway haproxy --run``, the tests and ``cluster up`` start it through
:class:`HaproxyProcess`: it checks the configuration first, starts HAProxy as a child (never a
daemon, so it is stopped by its own PID), waits until it listens, and answers questions over the
admin socket (each server's state; drain a server by hand).
"""

from __future__ import annotations

import contextlib
import csv
import io
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from breakwater.gateway.haproxy_check import check_config, haproxy_program
from breakwater.gateway.haproxy_config import render
from breakwater.gateway.plan import GatewayError, GatewayPlan

READY_SECONDS = 10.0
STOP_SECONDS = 10.0
SOCKET_SECONDS = 5.0


class HaproxyProcess:
    """One HAProxy for ``plan``, its configuration, log and admin socket in ``folder``."""

    def __init__(self, plan: GatewayPlan, folder: Path, program: str | None = None) -> None:
        self.folder = folder
        self.socket_path = plan.stats_socket or folder / "admin.sock"
        self.plan = replace(plan, stats_socket=self.socket_path)
        self.program = program or haproxy_program()
        self.config_path = folder / "haproxy.cfg"
        self.log_path = folder / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients reach the gateway."""
        host = self.plan.bind_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.plan.bind_port}"

    def start(self) -> None:
        """Write and check the configuration, start HAProxy and wait until it accepts
        connections and admin commands; :class:`GatewayError` (with its log) if it does not."""
        self.folder.mkdir(parents=True, exist_ok=True)
        text = render(self.plan)
        check_config(text, self.program)
        self.config_path.write_text(text)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.program, "-db", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GatewayError(f"haproxy exited with {self.process.returncode}: {self._log()}")
            if self._listening() and self._admin_answers():
                return
            time.sleep(0.05)
        self.stop()
        raise GatewayError(f"haproxy did not listen within {READY_SECONDS} s: {self._log()}")

    def stop(self) -> int | None:
        """Stop HAProxy (SIGTERM, then SIGKILL after :data:`STOP_SECONDS`); its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_SECONDS)
        return self.process.returncode

    def __enter__(self) -> HaproxyProcess:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def command(self, line: str) -> str:
        """Send one command to the admin socket and return HAProxy's answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(SOCKET_SECONDS)
            try:
                client.connect(str(self.socket_path))
                client.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := client.recv(65536):
                    chunks.append(chunk)
            except OSError as exc:
                raise GatewayError(f"haproxy's admin socket did not answer: {exc}") from exc
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's ``show stat`` for the nodes' backend: a row per server and ``BACKEND``
        (columns such as ``status``, ``wretr`` retries, ``wredis`` redispatches)."""
        rows = csv.DictReader(io.StringIO(self.command("show stat").lstrip("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == "nodes"}

    def server_states(self) -> dict[str, str]:
        """Each server's state as HAProxy sees it (``UP``, ``DOWN``, ``DRAIN``, ``MAINT``…)."""
        return {name: row["status"] for name, row in self.stats().items() if name != "BACKEND"}

    def set_state(self, server: str, state: str) -> None:
        """Put a server in ``ready``, ``drain`` (no new requests) or ``maint`` by hand."""
        if state not in ("ready", "drain", "maint"):
            raise GatewayError(f"state {state!r} is not ready, drain or maint")
        answer = self.command(f"set server nodes/{server} state {state}").strip()
        if answer:
            raise GatewayError(f"haproxy: {answer}")

    def _listening(self) -> bool:
        host = "127.0.0.1" if self.plan.bind_host in ("0.0.0.0", "") else self.plan.bind_host
        with contextlib.suppress(OSError):
            socket.create_connection((host, self.plan.bind_port), timeout=0.5).close()
            return True
        return False

    def _admin_answers(self) -> bool:
        """The admin socket takes commands: HAProxy may listen on its port a moment before it
        has made the socket, and a caller reads the servers' states through it at once."""
        try:
            self.command("show info")
        except GatewayError:
            return False
        return True

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
