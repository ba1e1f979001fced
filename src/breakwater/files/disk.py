"""Blobs on local disk: ``<root>/<2 hex>/<sha256>`` with a ``.json`` info file beside it.

A blob becomes visible by a rename of a file already fsynced, after its info file, so a
crash leaves either no blob or a whole one (an info file without its blob is ignored and
overwritten by the next upload of those bytes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from breakwater.core.errors import NotFound
from breakwater.files.blobs import CHUNK, BlobInfo
from breakwater.files.references import is_sha256


def fsync_directory(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskBlobs:
    """A :class:`~breakwater.files.blobs.BlobStore` in a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def _put(self, source: Path, info: BlobInfo) -> BlobInfo:
        existing = self._stat(info.sha256)
        if existing is not None:
            source.unlink(missing_ok=True)
            return existing
        target = self._path(info.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = target.with_name(target.name + ".json")
        temp = target.with_name(target.name + ".json.tmp")
        temp.write_text(json.dumps(dataclasses.asdict(info)))
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        temp.replace(meta)
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        try:
            source.replace(target)
        except OSError:  # another file system: copy, fsync, rename
            partial = target.with_name(target.name + ".tmp")
            shutil.copyfile(source, partial)
            with partial.open("rb") as handle:
                os.fsync(handle.fileno())
            partial.replace(target)
            source.unlink()
        fsync_directory(target.parent)
        return info

    def _stat(self, sha256: str) -> BlobInfo | None:
        path = self._path(sha256)
        try:
            size = path.stat().st_size
            raw = json.loads(path.with_name(path.name + ".json").read_text())
        except (OSError, ValueError):
            return None
        return dataclasses.replace(BlobInfo(**raw), size=size)

    async def put(self, source: Path, info: BlobInfo) -> BlobInfo:
        return await asyncio.to_thread(self._put, source, info)

    async def stat(self, sha256: str) -> BlobInfo | None:
        if not is_sha256(sha256):
            return None
        return await asyncio.to_thread(self._stat, sha256)

    async def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self._path(sha256).open, "rb")
        except OSError as exc:
            raise NotFound(f"file {sha256} is not stored") from exc
        try:
            await asyncio.to_thread(handle.seek, start)
            left = end - start
            while left > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, sha256: str) -> bool:
        def remove() -> bool:
            path = self._path(sha256)
            existed = path.exists()
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".json").unlink(missing_ok=True)
            return existed

        return await asyncio.to_thread(remove)

    async def blobs(self) -> AsyncIterator[BlobInfo]:
        names = await asyncio.to_thread(
            lambda: sorted(p.name for p in self.root.glob("??/*") if is_sha256(p.name))
        )
        for name in names:
            info = await self.stat(name)
            if info is not None:
                yield info

    async def aclose(self) -> None:
        return None
