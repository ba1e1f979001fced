"""Fetching the bytes of a file from a peer region (``GET /v1/replication/files/<sha256>``).

Documents replicate with their ``{"$file": sha}`` references, not with the bytes; a region
that lacks a referred file fetches it from a peer with the replication key that peer issued
(ADR 0042). Files are content-addressed, so the copy is checked
against its name while it streams to disk: a peer can delay a file, never substitute one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from breakwater.core.topology import Peer
from breakwater.replication.client import PullFailed, peer_http

FILES_PATH = "/v1/replication/files/"
INFO_HEADER = "Breakwater-File-Info"
"""JSON (ASCII) of what the peer knows of the file: type, collection, uploader, creation."""
FETCH_TIMEOUT = 60.0
"""Seconds without a byte after which a copy is abandoned (it is tried again later)."""
WRITE_BATCH = 1 << 20
"""Bytes written and hashed per hop to a thread."""


@dataclass(frozen=True)
class FetchedFile:
    """A peer's file, verified and fsynced in a local staging file the caller moves on."""

    path: Path
    sha256: str
    size: int
    info: dict[str, Any]
    """The peer's ``Breakwater-File-Info``: ``content_type``, ``collection``, ``uploader``,
    ``created``."""


class PeerFiles:
    """Fetches files from one peer region, trying its URLs in turn."""

    def __init__(
        self,
        peer: Peer,
        region: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 3.0,
    ) -> None:
        self.peer = peer
        self._next_url = 0
        self._timeout = httpx.Timeout(FETCH_TIMEOUT, connect=connect_timeout)
        self._http = peer_http(peer, region, transport)

    async def fetch(self, sha256: str, staging: Path) -> FetchedFile | None:
        """The file ``sha256`` copied into ``staging``; ``None`` when the peer has not got it.

        Raises :class:`PullFailed` when the peer cannot be reached or answers wrongly (the
        bytes do not hash to ``sha256``): the staging file is removed then.
        """
        url = self.peer.urls[self._next_url % len(self.peer.urls)]
        await asyncio.to_thread(staging.mkdir, parents=True, exist_ok=True)
        target = staging / f"{sha256}.{os.getpid()}.{id(self)}.fetch"
        try:
            async with self._http.stream(
                "GET", url + FILES_PATH + sha256, timeout=self._timeout
            ) as response:
                if response.status_code == 404:
                    return None
                if response.status_code in (401, 403):
                    raise PullFailed("refused", f"{url}: HTTP {response.status_code}")
                if response.status_code != 200:
                    self._next_url += 1
                    raise PullFailed("unavailable", f"{url}: HTTP {response.status_code}")
                info = _parse_info(url, response.headers.get(INFO_HEADER, ""))
                hasher = hashlib.sha256()
                size = 0
                handle = await asyncio.to_thread(target.open, "wb")
                try:
                    batch: list[bytes] = []
                    pending = 0
                    async for chunk in response.aiter_raw():
                        batch.append(chunk)
                        pending += len(chunk)
                        if pending >= WRITE_BATCH:
                            await asyncio.to_thread(_write, handle, b"".join(batch), hasher)
                            size += pending
                            batch, pending = [], 0
                    size += pending
                    await asyncio.to_thread(_write, handle, b"".join(batch), hasher)
                    await asyncio.to_thread(os.fsync, handle.fileno())
                finally:
                    await asyncio.to_thread(handle.close)
        except httpx.HTTPError as exc:
            target.unlink(missing_ok=True)
            self._next_url += 1
            raise PullFailed("unavailable", f"{url}: {type(exc).__name__}") from exc
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        if hasher.hexdigest() != sha256:
            target.unlink(missing_ok=True)
            raise PullFailed("bad_answer", f"{url}: the bytes of file {sha256} hash otherwise")
        return FetchedFile(target, sha256, size, info)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()


def _write(handle: Any, data: bytes, hasher: Any) -> None:
    handle.write(data)
    hasher.update(data)


def _parse_info(url: str, header: str) -> dict[str, Any]:
    try:
        info = json.loads(header)
    except ValueError as exc:
        raise PullFailed("bad_answer", f"{url}: {INFO_HEADER} is not JSON") from exc
    if not isinstance(info, dict):
        raise PullFailed("bad_answer", f"{url}: {INFO_HEADER} is not an object")
    return info
