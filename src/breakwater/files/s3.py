"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph, R2...) through boto3.

``s3://bucket/prefix?endpoint_url=http://host:9000&region=eu-west-1``: credentials come from
boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance
role), never from the URL, so the URL can be logged. A blob's info travels as the object's
``Content-Type`` and ``x-amz-meta-*`` headers, so the bucket alone describes itself.
boto3 is synchronous: each call runs in a thread. Its errors never leave this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from breakwater.core.errors import ConfigError, NotFound, Unavailable
from breakwater.files.blobs import CHUNK, BlobInfo
from breakwater.files.references import is_sha256

T = TypeVar("T")


class S3Blobs:
    """A :class:`~breakwater.files.blobs.BlobStore` in one bucket, under one key prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def from_url(cls, url: str) -> S3Blobs:
        """The store of an ``s3://`` URL (see the module docstring)."""
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError as exc:
            raise ConfigError(
                "files_store is s3:// but boto3 is not installed: pip install 'breakwater[s3]'"
            ) from exc
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ConfigError(
                "files_store must not carry credentials; use AWS_ACCESS_KEY_ID and"
                " AWS_SECRET_ACCESS_KEY (or a profile or an instance role)"
            )
        if not parts.hostname:
            raise ConfigError(f"files_store = {url!r} names no bucket (s3://bucket/prefix)")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint_url", "region"}
        if unknown:
            raise ConfigError(f"files_store has unknown parameters {sorted(unknown)}")
        client = boto3.client(
            "s3",
            endpoint_url=query.get("endpoint_url"),
            region_name=query.get("region", "us-east-1"),
            config=BotoConfig(
                connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
            ),
        )
        return cls(client, parts.hostname, parts.path)

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}{sha256}"

    async def _call(self, work: Callable[[], T]) -> T:
        """Run one boto3 call in a thread; a storage failure becomes ``Unavailable``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(work)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise NotFound("the file is not stored") from exc
            raise Unavailable(f"file storage refused the request ({code})") from exc
        except BotoCoreError as exc:
            raise Unavailable("file storage cannot be reached") from exc

    async def put(self, source: Path, info: BlobInfo) -> BlobInfo:
        existing = await self.stat(info.sha256)
        if existing is not None:
            await asyncio.to_thread(source.unlink, missing_ok=True)
            return existing
        extra = {
            "ContentType": info.content_type,
            "Metadata": {
                "collection": info.collection,
                "uploader": info.uploader,
                "created": repr(info.created),
            },
        }
        await self._call(
            lambda: self._client.upload_file(
                str(source), self.bucket, self._key(info.sha256), ExtraArgs=extra
            )
        )
        await asyncio.to_thread(source.unlink, missing_ok=True)
        return info

    async def stat(self, sha256: str) -> BlobInfo | None:
        if not is_sha256(sha256):
            return None
        try:
            head = await self._call(
                lambda: self._client.head_object(Bucket=self.bucket, Key=self._key(sha256))
            )
        except NotFound:
            return None
        meta = head.get("Metadata", {})
        return BlobInfo(
            sha256=sha256,
            size=int(head["ContentLength"]),
            content_type=str(head.get("ContentType", "application/octet-stream")),
            collection=meta.get("collection", ""),
            uploader=meta.get("uploader", ""),
            created=float(meta.get("created", "0")),
        )

    async def read(self, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        if end <= start:
            return
        answer = await self._call(
            lambda: self._client.get_object(
                Bucket=self.bucket, Key=self._key(sha256), Range=f"bytes={start}-{end - 1}"
            )
        )
        body = answer["Body"]
        try:
            while True:
                chunk = await self._call(lambda: body.read(CHUNK))
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def delete(self, sha256: str) -> bool:
        existed = await self.stat(sha256) is not None
        await self._call(
            lambda: self._client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        )
        return existed

    async def blobs(self) -> AsyncIterator[BlobInfo]:
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
            if token:
                arguments["ContinuationToken"] = token
            page: dict[str, Any] = await self._call(
                partial(self._client.list_objects_v2, **arguments)
            )
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(self.prefix) :]
                info = await self.stat(name) if is_sha256(name) else None
                if info is not None:
                    yield info
            token = page.get("NextContinuationToken")
            if not token:
                return

    async def aclose(self) -> None:
        self._client.close()
