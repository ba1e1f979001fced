"""Free loopback ports for the processes the chaos tools, the benchmarks and the tests start.

A node binds its port seconds after it was picked; a port from the kernel's ephemeral range
(what ``bind(0)`` hands out) may by then be the local end of some outgoing connection (a load
generator's, a proxy's, another test's), and the node fails with "address already in use". Ports
are picked at random below that range, where only listeners take them.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"


class NoFreePort(RuntimeError):
    """Every port tried below the ephemeral range was taken."""


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class PortPicker:
    """Distinct free loopback ports below the kernel's ephemeral range."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.high = _ephemeral_low() - 1
        self.low = max(10_000, self.high - 20_000)
        self.taken: set[int] = set()

    def __call__(self) -> int:
        for _ in range(1000):
            port = self.rng.randint(self.low, self.high)
            if port in self.taken:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind((LOOPBACK, port))
                except OSError:
                    continue
            self.taken.add(port)
            return port
        raise NoFreePort(f"no free port between {self.low} and {self.high}")


free_port = PortPicker()
"""A loopback TCP port nothing listens on now, none this process was given before."""
