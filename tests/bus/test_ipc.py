"""The ipc bus between processes: notices cross, dead peers are forgotten, paths are checked."""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakwater.bus import CommitNotice, open_bus
from breakwater.bus.ipc import PEER_REFRESH_SECONDS, IpcBus
from breakwater.core.errors import ConfigError


def entries(directory: Path) -> list[Path]:
    """What the directory holds now."""
    return list(directory.iterdir())


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket paths fit the Unix limit."""
    with tempfile.TemporaryDirectory(prefix="bw-ipc-") as name:
        yield Path(name)


async def test_a_notice_reaches_the_subscribers_of_every_peer(short_dir: Path) -> None:
    """Published on one bus, a notice reaches that bus's subscribers and the other's."""
    first, second = IpcBus(short_dir), IpcBus(short_dir)
    await first.open()
    await second.open()
    try:
        here, there = first.subscribe(), second.subscribe()
        first.publish(CommitNotice({"r1": 7}, 1.5))
        assert (await asyncio.wait_for(anext(here), 2)).head == {"r1": 7}
        received = await asyncio.wait_for(anext(there), 2)
        assert (received.head, received.at) == ({"r1": 7}, 1.5)
    finally:
        await first.aclose()
        await second.aclose()
    assert entries(short_dir) == []  # each bus removed its socket


PUBLISHER = """
import asyncio, sys
from pathlib import Path
from breakwater.bus import CommitNotice
from breakwater.bus.ipc import IpcBus

async def main() -> None:
    bus = IpcBus(Path(sys.argv[1]))
    await bus.open()
    for seq in range(1, 4):
        bus.publish(CommitNotice({"other": seq}, 0.0))
    await bus.aclose()

asyncio.run(main())
"""


async def test_a_notice_crosses_from_another_process(short_dir: Path) -> None:
    """A bus in a subprocess reaches a subscriber here."""
    bus = IpcBus(short_dir)
    await bus.open()
    try:
        subscription = bus.subscribe()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PUBLISHER, str(short_dir)
        )
        assert await asyncio.wait_for(process.wait(), 30) == 0
        heads = [(await asyncio.wait_for(anext(subscription), 2)).head for _ in range(3)]
        assert heads == [{"other": 1}, {"other": 2}, {"other": 3}]
    finally:
        await bus.aclose()


async def test_the_socket_of_a_dead_peer_is_removed(short_dir: Path) -> None:
    """A socket file nobody is bound to any more is dropped from the directory."""
    stale = short_dir / "12345-deadbeef.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    leftover.bind(str(stale))
    leftover.close()  # the file stays, as after a SIGKILL
    bus = IpcBus(short_dir)
    await bus.open()
    try:
        bus.publish(CommitNotice({"r1": 1}, 0.0))
        assert not stale.exists()
        assert bus.dropped == 1
    finally:
        await bus.aclose()


async def test_a_peer_that_joins_later_is_reached(short_dir: Path) -> None:
    """A bus opened after the publisher listed its peers is found at the next refresh."""
    first = IpcBus(short_dir)
    await first.open()
    first.publish(CommitNotice({"r1": 1}, 0.0))  # lists the peers: none yet
    second = IpcBus(short_dir)
    await second.open()
    try:
        subscription = second.subscribe()
        await asyncio.sleep(PEER_REFRESH_SECONDS)
        first.publish(CommitNotice({"r1": 2}, 0.0))
        assert (await asyncio.wait_for(anext(subscription), 2)).head == {"r1": 2}
    finally:
        await first.aclose()
        await second.aclose()


async def test_garbage_datagrams_are_ignored(short_dir: Path) -> None:
    """A datagram that is not a notice is skipped; the next notice still arrives."""
    bus = IpcBus(short_dir)
    await bus.open()
    try:
        subscription = bus.subscribe()
        [path] = entries(short_dir)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"not json", str(path))
            sender.sendto(b'{"head": 3, "at": 1}', str(path))
            sender.sendto(b'{"head": {"r1": 9}, "at": 2}', str(path))
        assert (await asyncio.wait_for(anext(subscription), 2)).head == {"r1": 9}
    finally:
        await bus.aclose()


async def test_a_directory_too_long_for_a_socket_path_is_refused(tmp_path: Path) -> None:
    """The error names the problem instead of failing inside bind()."""
    bus = IpcBus(tmp_path / ("x" * 120))
    with pytest.raises(ConfigError, match="too long for a Unix socket path"):
        await bus.open()


def test_an_ipc_url_must_name_an_absolute_directory() -> None:
    """``ipc://relative`` is refused with the expected form."""
    with pytest.raises(ConfigError, match=r"ipc:///path/to/dir"):
        open_bus("ipc://relative/dir")
    assert isinstance(open_bus("ipc:///tmp/bw"), IpcBus)
