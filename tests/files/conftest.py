"""Fixtures for files: a real S3-compatible server (moto in server mode) and a blob store of
each backend, so that one conformance suite runs against disk and S3 alike."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from breakwater.files.blobs import BlobStore, open_blobs
from tests.conftest import free_port

BACKENDS = ["disk", "s3"]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback for the whole session (its own thread, real HTTP)."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_url(s3_endpoint: str) -> str:
    """An ``s3://`` files_store URL for a fresh bucket of the moto server."""
    import boto3

    bucket = f"files-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return f"s3://{bucket}/blobs?endpoint_url={s3_endpoint}"


@pytest.fixture(params=BACKENDS)
def files_store(request: pytest.FixtureRequest) -> str:
    """The ``files_store`` setting of each backend ("" is the disk default)."""
    if request.param == "disk":
        return ""
    url: str = request.getfixturevalue("s3_url")
    return url


@pytest.fixture
async def blobs(files_store: str, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """An open blob store of each backend."""
    store = open_blobs(files_store, tmp_path)
    yield store
    await store.aclose()


def sha256(data: bytes) -> str:
    """The name a file with these bytes gets."""
    return hashlib.sha256(data).hexdigest()


def metadata(**pairs: str) -> str:
    """An ``Upload-Metadata`` header of ``pairs``."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())
