"""Through a local cluster of real regions: files follow the documents that refer to them, and
survive the loss of the region they were uploaded to (ADR 0042)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec
from tests.chaos.test_cluster_regions import eventually
from tests.files import tus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(ClusterSpec(regions=2, latency_ms=5), tmp_path / "cluster") as running:
        yield running


async def stored_file(region_data: Path, sha256: str) -> bool:
    """True when the region's disk blob store holds the file (what survives its peer)."""
    return (region_data / "files" / "blobs" / sha256[:2] / sha256).exists()


async def reaches(region: httpx.AsyncClient, doc: str) -> None:
    """Wait until the region serves document ``doc`` (``collection/id``): it replicated."""

    async def there() -> bool:
        collection, _, doc_id = doc.partition("/")
        answer = await region.get(f"/v1/collections/{collection}/docs/{doc_id}")
        return answer.status_code == 200

    await eventually(there, 60, f"{doc} reaches the region")


async def test_a_file_uploaded_in_one_region_is_served_by_another_after_the_first_is_lost(
    cluster: LocalCluster,
) -> None:
    """Uploaded in eu and referred to by a document there, the file's exact bytes download in
    us; after eu is lost with its store and files, us still serves them."""
    eu, us = cluster.region("eu"), cluster.region("us")
    data = os.urandom(3 << 20) + b"end"
    async with (
        httpx.AsyncClient(base_url=eu.node_urls()[0], timeout=30) as in_eu,
        httpx.AsyncClient(base_url=us.node_urls()[0], timeout=30) as in_us,
    ):
        sha256 = await tus.upload(in_eu, data)
        assert sha256 == hashlib.sha256(data).hexdigest()
        written = await in_eu.put(
            "/v1/collections/photos/docs/p1", json={"image": {"$file": sha256}, "title": "x"}
        )
        assert written.status_code in (200, 201), written.text

        await reaches(in_us, "photos/p1")
        download = await in_us.get(f"/v1/files/{sha256}", params={"doc": "photos/p1"})
        assert download.status_code == 200, download.text
        assert download.content == data
        assert download.headers["etag"] == f'"{sha256}"'

        async def copied() -> bool:
            return await stored_file(us.data, sha256)

        await eventually(copied, 60, "us holds the file's bytes")
        await cluster.lose_region("eu")
        assert not (eu.data / "files").exists()
        after = await in_us.get(f"/v1/files/{sha256}", params={"doc": "photos/p1"})
        assert after.status_code == 200, after.text
        assert after.content == data
        ranged = await in_us.get(
            f"/v1/files/{sha256}", params={"doc": "photos/p1"}, headers={"Range": "bytes=-3"}
        )
        assert ranged.status_code == 206 and ranged.content == b"end"


async def test_a_file_copied_in_the_background_before_any_download(
    cluster: LocalCluster,
) -> None:
    """us copies a file its replicated document refers to without anyone downloading it, so
    losing eu right after loses nothing."""
    eu, us = cluster.region("eu"), cluster.region("us")
    data = os.urandom(100_000)
    async with (
        httpx.AsyncClient(base_url=eu.node_urls()[0], timeout=30) as in_eu,
        httpx.AsyncClient(base_url=us.node_urls()[0], timeout=30) as in_us,
    ):
        sha256 = await tus.upload(in_eu, data)
        written = await in_eu.put(
            "/v1/collections/photos/docs/bg", json={"photos": [{"$file": sha256}]}
        )
        assert written.status_code in (200, 201), written.text

        async def copied() -> bool:
            return await stored_file(us.data, sha256)

        await eventually(copied, 60, "us copies the file by itself")
        await cluster.lose_region("eu")
        download = await in_us.get(f"/v1/files/{sha256}", params={"doc": "photos/bg"})
        assert download.status_code == 200 and download.content == data


async def test_a_file_no_region_has_is_a_retryable_problem(cluster: LocalCluster) -> None:
    """A document refers to a file no region holds (its upload has not finished): a download
    in another region answers 503 ``file_not_replicated`` with ``Retry-After``, and the
    bytes once uploaded are served there."""
    eu, us = cluster.region("eu"), cluster.region("us")
    data = b"late bytes"
    sha256 = hashlib.sha256(data).hexdigest()
    async with (
        httpx.AsyncClient(base_url=eu.node_urls()[0], timeout=30) as in_eu,
        httpx.AsyncClient(base_url=us.node_urls()[0], timeout=30) as in_us,
    ):
        written = await in_eu.put("/v1/collections/photos/docs/late", json={"f": {"$file": sha256}})
        assert written.status_code in (200, 201), written.text

        await reaches(in_us, "photos/late")
        missing = await in_us.get(f"/v1/files/{sha256}", params={"doc": "photos/late"})
        assert missing.status_code == 503, missing.text
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["type"] == "file_not_replicated"
        assert int(missing.headers["retry-after"]) > 0
        assert await tus.upload(in_eu, data) == sha256
        served = await in_us.get(f"/v1/files/{sha256}", params={"doc": "photos/late"})
        assert served.status_code == 200 and served.content == data
