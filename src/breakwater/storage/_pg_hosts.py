"""Connecting to one of several PostgreSQL hosts, each tried with a deadline of its own.

asyncpg tries a multi-host URL's hosts in order under one deadline for the whole attempt. A
listed host that neither answers nor refuses (its machine switched off, a network dropping the
packets) then uses up the deadline, and the hosts after it are never tried: a region whose old
primary vanished that way would never reach the standby promoted after it. So the store tries
the hosts itself, one at a time, each within ``timeout``, starting with the one that last took
a connection (after a failover, the new primary).
"""

from __future__ import annotations

from typing import Any

import asyncpg

DEFAULT_PORT = 5432
CONNECT_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
"""Why one host may refuse a connection (down, a standby, wrong password): try the next."""

Host = tuple[str, int]


def parse_hosts(netloc: str) -> tuple[Host, ...]:
    """The ``host:port`` list of a URL's network location (``u:pw@h1:5432,[::1]:5433``); empty
    when it names no host (a Unix socket chosen by the driver). A bad port is a ValueError."""
    hosts: list[Host] = []
    for item in netloc.rpartition("@")[2].split(","):
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if host:
            hosts.append((host, int(port) if port else DEFAULT_PORT))
    return tuple(hosts)


class HostRotation:
    """Connects to the first of ``hosts`` that takes the connection, starting with the last
    one that did; a drop-in for ``asyncpg.connect`` (for the pool's ``connect``, too)."""

    def __init__(self, hosts: tuple[Host, ...]) -> None:
        self.hosts = hosts
        self._first = 0

    async def connect(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        """``asyncpg.connect(*args, **kwargs)`` on each host in turn; the last host's error if
        none took it. Each try has the whole ``timeout``, so an attempt takes at most the
        number of hosts times ``timeout``."""
        if len(self.hosts) < 2:
            only: asyncpg.Connection = await asyncpg.connect(*args, **kwargs)
            return only
        errors: list[BaseException] = []
        for step in range(len(self.hosts)):
            index = (self._first + step) % len(self.hosts)
            host, port = self.hosts[index]
            try:
                conn: asyncpg.Connection = await asyncpg.connect(
                    *args, host=host, port=port, **kwargs
                )
            except CONNECT_ERRORS as exc:
                errors.append(exc)
                continue
            self._first = index
            return conn
        # A host that answered but takes no writes says more than one that did not answer.
        standbys = [e for e in errors if isinstance(e, asyncpg.TargetServerAttributeNotMatched)]
        raise (standbys or errors)[-1]
