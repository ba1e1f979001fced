"""A stock tus client (tuspy) against a real node, and a connection dropped mid-PATCH."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.files.conftest import metadata, sha256

TUS = {"Tus-Resumable": "1.0.0"}
DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.mark.parametrize("checksum", [False, True])
def test_tuspy_uploads_a_file_in_chunks(
    start_server: Callable[..., ServerProcess], checksum: bool
) -> None:
    """tuspy creates, PATCHes 100 KiB chunks (with sha1 checksums or not); the file is whole."""
    client_module = pytest.importorskip("tusclient.client", reason="tuspy is in the dev extra")
    node = start_server()
    uploader = client_module.TusClient(f"{node.url}/v1/uploads").uploader(
        file_stream=io.BytesIO(DATA),
        chunk_size=100 * 1024,
        metadata={"collection": "photos", "filetype": "image/png"},
        upload_checksum=checksum,
    )
    uploader.upload()
    head = httpx.head(uploader.url, headers=TUS)
    assert head.headers["Upload-Offset"] == str(len(DATA))
    name = head.headers["Breakwater-File"]
    assert name == sha256(DATA)
    assert httpx.get(f"{node.url}/v1/files/{name}").content == DATA


def _send_part_of_a_patch(url: str, location: str, sent: bytes, declared: int) -> None:
    """A PATCH that declares ``declared`` bytes, sends ``sent``, and drops the connection."""
    parts = urlsplit(url)
    request = (
        f"PATCH {location} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request + sent)
        time.sleep(0.5)  # let the node take the bytes in before the connection drops


def test_the_bytes_of_a_dropped_patch_are_kept_and_the_upload_resumes(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A client cut off mid-PATCH finds the bytes that arrived by HEAD, and finishes from there."""
    node = start_server()
    created = httpx.post(
        f"{node.url}/v1/uploads",
        headers={
            **TUS,
            "Upload-Length": str(len(DATA)),
            "Upload-Metadata": metadata(collection="photos"),
        },
    )
    location = created.headers["Location"]
    _send_part_of_a_patch(node.url, location, DATA[:300_000], len(DATA))
    deadline = time.monotonic() + 10
    offset = 0
    while time.monotonic() < deadline:
        offset = int(httpx.head(f"{node.url}{location}", headers=TUS).headers["Upload-Offset"])
        if offset == 300_000:
            break
        time.sleep(0.1)
    assert offset == 300_000
    done = httpx.patch(
        f"{node.url}{location}",
        content=DATA[offset:],
        headers={
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert done.headers["Breakwater-File"] == sha256(DATA)
    assert httpx.get(f"{node.url}/v1/files/{sha256(DATA)}").content == DATA
