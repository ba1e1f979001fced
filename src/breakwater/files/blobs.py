"""The ``BlobStore`` seam: where finished files live, named by their SHA-256.

Backends are chosen by URL (:func:`open_blobs`): an empty URL or ``file://`` keeps them on
local disk under the data directory, ``s3://bucket/prefix`` in S3-compatible object storage
(boto3, the ``s3`` extra). One conformance suite (tests/files/test_blob_conformance.py) runs
against every backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from breakwater.core.errors import ConfigError

CHUNK = 1 << 20
"""Bytes per read of a download: big enough that the thread hop per chunk costs nothing."""


@dataclass(frozen=True)
class BlobInfo:
    """What is known of a finished file besides its bytes."""

    sha256: str
    size: int
    content_type: str
    collection: str
    """The collection named when it was uploaded (the first upload of these bytes)."""
    uploader: str
    """The uid of the first uploader (empty: anonymous, in open mode)."""
    created: float
    """Unix seconds when it was first stored (the garbage collector's grace starts there)."""


class BlobStore(Protocol):
    """Content-addressed storage of finished files.

    Every method is safe to call concurrently; a blob is immutable once stored.
    """

    async def put(self, source: Path, info: BlobInfo) -> BlobInfo:
        """Store the local file ``source`` (whose bytes hash to ``info.sha256``) and remove it.

        Idempotent: when the blob exists already, ``source`` is removed and the stored info
        is returned (the first upload's type and collection stay). Durable when it returns.
        Raises ``Unavailable`` when the storage cannot be reached (``source`` is kept).
        """
        ...

    async def stat(self, sha256: str) -> BlobInfo | None:
        """The blob's info, or ``None`` when it is not stored."""
        ...

    def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of the blob, in chunks of at most :data:`CHUNK`.

        The caller checked the range against :meth:`stat`; a blob deleted meanwhile raises
        ``NotFound`` from the iterator.
        """
        ...

    async def delete(self, sha256: str) -> bool:
        """Remove the blob; ``False`` when there was none. Idempotent."""
        ...

    def blobs(self) -> AsyncIterator[BlobInfo]:
        """Every stored blob's info, in no particular order (for garbage collection)."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads; the store is not used after."""
        ...


SCHEMES = ("file", "s3")


def open_blobs(url: str, data: Path) -> BlobStore:
    """The blob store of ``url`` (empty: ``<data>/files/blobs`` on local disk)."""
    scheme = urlsplit(url).scheme if url else "file"
    if scheme == "file":
        from breakwater.files.disk import DiskBlobs

        path = urlsplit(url).path if url else ""
        return DiskBlobs(Path(path) if path else data / "files" / "blobs")
    if scheme == "s3":
        from breakwater.files.s3 import S3Blobs

        return S3Blobs.from_url(url)
    raise ConfigError(f"files_store = {url!r}: the scheme must be one of {list(SCHEMES)}")
