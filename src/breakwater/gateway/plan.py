"""What a region's gateway is asked to do: its nodes, strategy, checks, retries and timeouts.

A plan is plain data, validated when it is built, so that a bad node URL or weight fails before
any configuration is written. :mod:`breakwater.gateway.haproxy_config` renders it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

Strategy = Literal["roundrobin", "leastconn", "weighted"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
MAX_WEIGHT = 256
"""HAProxy's largest server weight."""
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class GatewayError(Exception):
    """A plan that cannot be rendered, a configuration HAProxy refuses, or HAProxy not running.

    ``detail`` is the one line the CLI prints after ``Error:``.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Node:
    """One server behind the gateway: a node's URL, its weight and whether it is a backup.

    Backups (for example another region's nodes) get traffic only while every other server is
    down: active-passive.
    """

    name: str
    host: str
    port: int
    weight: int = 1
    backup: bool = False

    @classmethod
    def from_url(cls, url: str, *, weight: int = 1, backup: bool = False, name: str = "") -> Node:
        """A node from ``http://host:port`` (HAProxy speaks plain HTTP to nodes on a private
        network; TLS ends at the gateway)."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise GatewayError(f"node {url!r}: expected http://host:port")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise GatewayError(f"node {url!r}: the port is not a number") from exc
        if parts.path not in ("", "/") or parts.query:
            raise GatewayError(f"node {url!r}: a node URL has no path or query")
        if not 1 <= weight <= MAX_WEIGHT:
            raise GatewayError(f"node {url!r}: weight {weight} is not between 1 and {MAX_WEIGHT}")
        host = parts.hostname
        chosen = name or f"{'backup' if backup else 'node'}-{host}-{port}"
        if not _NAME.fullmatch(chosen):
            raise GatewayError(f"node {url!r}: name {chosen!r} is not 1-64 of A-Za-z0-9_.-")
        return cls(chosen, host, port, weight, backup)

    @property
    def address(self) -> str:
        """``host:port`` as HAProxy writes it (IPv6 addresses in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _positive(what: str, *seconds: float) -> None:
    if not all(value > 0 for value in seconds):
        raise GatewayError(f"{what}: every interval and timeout must be above 0 s")


@dataclass(frozen=True)
class HealthChecks:
    """Active checks of ``/readyz``: a node leaves after ``fall`` failures (checked every
    ``fast_interval`` once one failed), returns after ``rise`` successes."""

    interval: float = 1.0
    fast_interval: float = 0.25
    down_interval: float = 1.0
    fall: int = 2
    rise: int = 2
    timeout: float = 1.0

    def __post_init__(self) -> None:
        _positive("checks", self.interval, self.fast_interval, self.down_interval, self.timeout)
        if self.fall < 1 or self.rise < 1:
            raise GatewayError(f"checks: fall {self.fall} and rise {self.rise} must be >= 1")

    def seconds_to_notice(self) -> float:
        """The longest a failing node keeps getting new requests after ``/readyz`` turns 503.

        A node's ``drain_grace`` should be at least this long, so that it serves until the
        gateway stopped sending to it.
        """
        return self.interval + self.timeout + (self.fall - 1) * self.fast_interval


@dataclass(frozen=True)
class Timeouts:
    """Bounds on every request through the gateway (seconds).

    ``request`` bounds the wait for a node's answer to an ordinary request; ``stream`` is the
    inactivity bound of long-polls (up to 60 s of ``wait``) and SSE streams (a comment every
    ``realtime_heartbeat``); ``tunnel`` that of an upgraded WebSocket (pinged by the node).
    """

    connect: float = 2.0
    request: float = 15.0
    stream: float = 75.0
    tunnel: float = 3600.0
    client: float = 75.0
    http_request: float = 10.0
    queue: float = 5.0

    def __post_init__(self) -> None:
        _positive(
            "timeouts",
            self.connect,
            self.request,
            self.stream,
            self.tunnel,
            self.client,
            self.http_request,
            self.queue,
        )


@dataclass(frozen=True)
class GatewayPlan:
    """A region's gateway: where it listens, the nodes it spreads requests over, and how."""

    nodes: tuple[Node, ...]
    strategy: Strategy = "roundrobin"
    bind_host: str = "127.0.0.1"
    bind_port: int = 8080
    checks: HealthChecks = field(default_factory=HealthChecks)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: int = 3
    error_limit: int = 10
    """Consecutive errors (5xx answers, failed connections) that eject a node before its
    health check notices (passive outlier ejection)."""
    max_connections: int | None = None
    """HAProxy's ``maxconn``; None lets it derive one from the file descriptor limit (each
    connection through it needs two descriptors)."""
    stats_socket: Path | None = None
    name_server_in_response: bool = False
    """Add ``X-Served-By: <server>`` to answers (debugging, tests); off by default because it
    tells clients the internal server names."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise GatewayError(f"strategy {self.strategy!r} is not one of {list(STRATEGIES)}")
        if not [node for node in self.nodes if not node.backup]:
            raise GatewayError("a gateway needs at least one node that is not a backup")
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            raise GatewayError(f"node names must differ: {names}")
        weighted = any(node.weight != 1 for node in self.nodes)
        if weighted and self.strategy != "weighted":
            raise GatewayError("weights need strategy 'weighted'")
        if self.retries < 0 or self.error_limit < 1 or (self.max_connections or 1) < 1:
            raise GatewayError("retries must be >= 0, error_limit and max_connections >= 1")
        if not 0 < self.bind_port < 65536:
            raise GatewayError(f"bind port {self.bind_port} is not a TCP port")
