"""The bus: how a node learns that changes were committed, by itself or by other nodes.

The store is the source of truth for changes; the bus only carries small *commit notices*
("the store committed up to this head"). A node that hears one pulls the new changes from the
store itself, so a lost or late notice delays a delivery but never loses or reorders one.

Contract for every backend (checked by tests/bus/test_conformance.py):

- ``publish`` is fire-and-forget: it never blocks, never raises and never waits for a remote
  broker. It is called after the commit it announces, never before.
- ``subscribe`` gives an iterator of the notices published after it was called, in publish
  order, through a bounded buffer. When a subscriber falls behind, its *oldest* notices are
  dropped (each notice carries the whole head it announces, so the newest one is enough) and
  counted in ``Subscription.dropped``.
- Lifecycle: ``await open()`` … ``await aclose()``; ``aclose`` ends every subscription's
  iteration. A backend that loses its broker keeps accepting ``publish`` calls (dropping what
  it cannot send) and reports it through ``healthy``; readers then rely on their fallback poll.

Backends are chosen by URL scheme with :func:`open_bus`: ``memory://`` (one process),
``ipc:///directory`` (the processes of one machine, e.g. the workers of ``serve --workers``),
``redis://`` (Redis pub/sub), ``nats://`` (core NATS) and ``nats+jetstream://`` (a JetStream
stream) for the nodes of a region. The broker
backends keep the contract through a broker outage: ``healthy`` turns false, ``publish`` still
returns at once, local subscribers still hear this node's commits, and the bus reconnects by
itself with exponential backoff and full jitter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from breakwater.core.cursor import VersionVector
from breakwater.core.errors import ConfigError

SCHEMES = ("memory", "ipc", "redis", "nats", "nats+jetstream")
CHANNEL = "commits"
"""Notices travel on ``<prefix>.commits``."""

__all__ = ["SCHEMES", "Bus", "BusStats", "CommitNotice", "Subscription", "open_bus", "split_prefix"]


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """The store committed changes up to ``head`` (per origin) at wall-clock time ``at``."""

    head: VersionVector
    at: float


@dataclass(slots=True)
class BusStats:
    """What a bus did since it opened (all zero for the in-process bus)."""

    sent: int = 0
    """Notices sent to the broker (one may cover several commits)."""
    received: int = 0
    """Notices received from other nodes through the broker."""
    reconnects: int = 0
    """Times the connection to the broker was lost and made again."""


class Subscription(Protocol):
    """The notices published after :meth:`Bus.subscribe`; iterate, then ``close()``."""

    dropped: int
    """How many notices were dropped because this subscriber fell behind."""

    def __aiter__(self) -> AsyncIterator[CommitNotice]:
        """Iterate the notices in publish order; the iteration ends when the bus closes."""

    async def __anext__(self) -> CommitNotice:
        """The next notice; waits for one; ``StopAsyncIteration`` once closed."""

    def close(self) -> None:
        """Stop receiving; a pending ``__anext__`` ends. Idempotent."""


class Bus(Protocol):
    """Fan-out of commit notices between the writers and the readers of one region's store."""

    async def open(self) -> None:
        """Connect to the broker (if any) and start serving."""

    async def aclose(self) -> None:
        """End every subscription and release connections. Idempotent."""

    def publish(self, notice: CommitNotice) -> None:
        """Announce a commit to every subscriber; never blocks, never raises."""

    def subscribe(self, buffer: int = 64) -> Subscription:
        """A new subscription holding at most ``buffer`` undelivered notices (drop-oldest)."""

    @property
    def healthy(self) -> bool:
        """False while the backend cannot deliver notices (readers fall back to polling)."""

    @property
    def stats(self) -> BusStats:
        """Counters for metrics."""


def split_prefix(url: str, default: str) -> tuple[str, str]:
    """``url`` without its ``prefix`` query parameter, and that prefix (or ``default``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for key, value in query if key == "prefix"), default)
    if not prefix:
        raise ConfigError("the prefix of a bus or cache URL must not be empty")
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def open_bus(url: str, namespace: str = "local") -> Bus:
    """A bus for ``url`` (not yet opened); an unknown scheme lists the supported ones.

    Broker backends take ``?prefix=NAME`` (default ``breakwater.<namespace>``, the region): the
    nodes of one region share it, and regions that share a broker keep apart.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme == "memory":
        from breakwater.bus.memory import MemoryBus

        return MemoryBus()
    if scheme == "ipc":
        from breakwater.bus.ipc import IpcBus

        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError("an ipc bus URL names an absolute directory: ipc:///path/to/dir")
        return IpcBus(Path(parts.path))
    if scheme in ("redis", "rediss", "nats", "tls", "nats+jetstream", "tls+jetstream"):
        broker_url, prefix = split_prefix(url, f"breakwater.{namespace}")
        channel = f"{prefix}.{CHANNEL}"
        if scheme.startswith("redis"):
            from breakwater.bus.redis import redis_bus

            return redis_bus(broker_url, channel)
        if scheme.endswith("+jetstream"):
            from breakwater.bus.jetstream import jetstream_bus

            plain = urlunsplit(urlsplit(broker_url)._replace(scheme=scheme.split("+")[0]))
            return jetstream_bus(plain, channel)
        from breakwater.bus.nats import nats_bus

        return nats_bus(broker_url, channel)
    # The URL itself is not repeated: a broker URL may carry a password.
    raise ConfigError(
        f"bus URL has an unsupported scheme {scheme!r}; supported: "
        + ", ".join(f"{name}://" for name in SCHEMES)
    )
