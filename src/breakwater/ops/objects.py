"""Where backups and the archive are kept: a folder (``file:///path``) or S3-compatible object
storage (``s3://bucket/prefix``).

Both hold named objects written whole: a folder writes each to a temporary name, fsyncs it and
renames it, so a reader never sees half an object; S3 puts are atomic. S3 needs the optional
``s3`` extra (boto3), which takes credentials and the endpoint of an S3-compatible server from
its usual settings (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from breakwater.core.errors import ConfigError


class ObjectStore(Protocol):
    """Named objects under one location."""

    url: str

    def put(self, name: str, body: bytes) -> None:
        """Write ``name`` whole (replacing it), durably."""

    def get(self, name: str) -> bytes:
        """The object ``name``; ``FileNotFoundError`` if there is none."""

    def names(self, prefix: str = "") -> list[str]:
        """The names that start with ``prefix``, sorted."""


def write_private(path: Path, body: bytes) -> None:
    """Write ``path`` readable by its owner only from the first byte (backups hold password
    hashes and signing keys), and fsync it."""
    path.unlink(missing_ok=True)  # a file left behind keeps its mode through O_TRUNC
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())


class FolderObjects:
    """Objects as files under a folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.resolve().as_uri()

    def put(self, name: str, body: bytes) -> None:
        """Write to a temporary file, fsync, rename, fsync the folder: all or nothing."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        write_private(partial, body)
        partial.replace(target)
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def get(self, name: str) -> bytes:
        """The file's bytes."""
        return (self.root / name).read_bytes()

    def names(self, prefix: str = "") -> list[str]:
        """Every file below the folder whose relative name starts with ``prefix``."""
        if not self.root.exists():
            return []
        found = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )
        return sorted(name for name in found if name.startswith(prefix))


class S3Objects:
    """Objects under a bucket and key prefix of an S3-compatible server."""

    def __init__(self, bucket: str, prefix: str) -> None:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "s3:// locations need boto3: pip install 'breakwater-server[s3]'"
            ) from exc
        self.url = f"s3://{bucket}/{prefix}"
        self._bucket = bucket
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._client: Any = boto3.client("s3")

    def put(self, name: str, body: bytes) -> None:
        """One PUT (atomic on S3)."""
        self._client.put_object(Bucket=self._bucket, Key=self._prefix + name, Body=body)

    def get(self, name: str) -> bytes:
        """One GET; a missing key is ``FileNotFoundError`` as for a folder."""
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._prefix + name)
        except self._client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"{self.url}: no object {name}") from exc
        body: bytes = answer["Body"].read()
        return body

    def names(self, prefix: str = "") -> list[str]:
        """Every key under the prefix, paged through."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._prefix + prefix
        )
        keys = (item["Key"] for page in pages for item in page.get("Contents", ()))
        return sorted(key[len(self._prefix) :] for key in keys)


def open_objects(url: str) -> ObjectStore:
    """The object store a ``file:///path``, plain path or ``s3://bucket/prefix`` names."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(f"{url!r} names no bucket; use s3://bucket/prefix")
        return S3Objects(parts.netloc, parts.path.lstrip("/"))
    if parts.scheme == "file":
        return FolderObjects(Path(parts.path))
    if parts.scheme == "":
        return FolderObjects(Path(url))
    raise ConfigError(f"{url!r}: backups and the archive go to file:///path or s3://bucket/prefix")
