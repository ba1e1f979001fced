"""The bus between the processes of one machine (``ipc:///dir``), used by ``serve --workers``.

Each bus binds a Unix datagram socket in the directory. ``publish`` hands the notice to this
process's own subscribers at once and sends one datagram to every other socket found there; the
peers hand it to theirs. A datagram that cannot leave at once (a peer's buffer is full, a peer has
died) is dropped and counted: a notice only says "the store moved, look", so a lost one delays a
delivery until the reader's fallback poll of the store and never loses a change.

Peers are found by listing the directory, at most every :data:`PEER_REFRESH_SECONDS` (a new peer
is reached within that delay, which is shorter than the readers' poll). A socket file whose owner
died answers ``ECONNREFUSED`` and is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from pathlib import Path

from breakwater.bus import CommitNotice
from breakwater.bus.memory import MemoryBus, MemorySubscription
from breakwater.core import codec
from breakwater.core.errors import ConfigError

PEER_REFRESH_SECONDS = 0.5
MAX_SOCKET_PATH = 100
"""Unix socket paths are limited to 108 bytes on Linux; keep a margin."""
_SUFFIX = ".sock"


class IpcBus:
    """A :class:`~breakwater.bus.Bus` over Unix datagram sockets in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sent = 0
        self.dropped = 0
        """Datagrams that could not be sent (a full or dead peer)."""
        self._local = MemoryBus()
        self._socket: socket.socket | None = None
        self._path: Path | None = None
        self._peers: list[str] = []
        self._peers_listed_at = -PEER_REFRESH_SECONDS

    async def open(self) -> None:
        """Bind this process's socket in the directory and start receiving."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"bus directory {str(self.directory)!r} is too long for a Unix socket path;"
                " choose a shorter ipc:// directory"
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(path))
        self._socket, self._path = sock, path
        asyncio.get_running_loop().add_reader(sock.fileno(), self._receive)

    async def aclose(self) -> None:
        """Stop receiving, remove this process's socket and end every subscription."""
        await self._local.aclose()
        sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None

    def publish(self, notice: CommitNotice) -> None:
        """Hand ``notice`` to this process's subscribers and send it to every peer."""
        self._local.publish(notice)
        sock = self._socket
        if sock is None:
            return
        datagram = codec.dumps({"head": notice.head, "at": notice.at})
        for peer in self._peer_paths():
            try:
                sock.sendto(datagram, peer)
                self.sent += 1
            except ConnectionRefusedError:
                self.dropped += 1
                Path(peer).unlink(missing_ok=True)  # nobody is bound there any more
                self._peers_listed_at = -PEER_REFRESH_SECONDS
            except FileNotFoundError:
                self.dropped += 1
                self._peers_listed_at = -PEER_REFRESH_SECONDS
            except OSError:  # BlockingIOError (a full peer) and anything else: drop
                self.dropped += 1

    def subscribe(self, buffer: int = 64) -> MemorySubscription:
        """A new subscription to the notices of this process and of its peers."""
        return self._local.subscribe(buffer)

    @property
    def healthy(self) -> bool:
        """True while the socket is open (there is no broker to lose)."""
        return self._socket is not None

    def _peer_paths(self) -> list[str]:
        now = time.monotonic()
        if now - self._peers_listed_at >= PEER_REFRESH_SECONDS:
            self._peers_listed_at = now
            try:
                found = list(self.directory.iterdir())
            except OSError:
                found = []
            self._peers = [
                str(path) for path in found if path.suffix == _SUFFIX and path != self._path
            ]
        return self._peers

    def _receive(self) -> None:
        sock = self._socket
        while sock is not None:
            try:
                datagram = sock.recv(65536)
            except OSError:  # BlockingIOError: nothing more to read now
                return
            try:
                fields = codec.loads(datagram)
                notice = CommitNotice(
                    {str(k): int(v) for k, v in fields["head"].items()}, float(fields["at"])
                )
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # not one of ours: ignore it rather than stop receiving
            self._local.publish(notice)
