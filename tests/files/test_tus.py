"""tus 1.0 over HTTP (core, creation, termination, checksum), on disk and on S3 alike."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.files import tus
from tests.files.conftest import metadata, sha256


@pytest.fixture
async def client(make_client: Callable[..., Any], files_store: str) -> httpx.AsyncClient:
    """An open-mode node whose files go to each backend, with a 1 MiB file limit."""
    node: httpx.AsyncClient = await make_client(files_store=files_store, files_max_size=1 << 20)
    return node


async def test_options_announce_version_extensions_and_max_size(client: httpx.AsyncClient) -> None:
    """OPTIONS answers Tus-Version, Tus-Extension, Tus-Max-Size and the checksum algorithms."""
    response = await client.options("/v1/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert {"creation", "termination", "checksum"} <= set(
        response.headers["Tus-Extension"].split(",")
    )
    assert response.headers["Tus-Max-Size"] == str(1 << 20)
    assert "sha1" in response.headers["Tus-Checksum-Algorithm"].split(",")


async def test_chunks_resumed_from_head_store_the_exact_bytes(client: httpx.AsyncClient) -> None:
    """Create, PATCH part, HEAD, PATCH the rest: the file is named by the bytes' SHA-256."""
    data = bytes(range(256)) * 40
    created = await tus.create(client, len(data))
    assert created.status_code == 201
    assert created.headers["Tus-Resumable"] == "1.0.0"
    location = created.headers["Location"]
    first = await tus.patch(client, location, 0, data[:1000])
    assert first.status_code == 204
    assert first.headers["Upload-Offset"] == "1000"
    assert "Breakwater-File" not in first.headers
    assert await tus.offset(client, location) == 1000
    last = await tus.patch(client, location, 1000, data[1000:])
    assert last.headers["Upload-Offset"] == str(len(data))
    assert last.headers["Breakwater-File"] == sha256(data)
    download = await client.get(f"/v1/files/{sha256(data)}")
    assert download.content == data
    assert download.headers["Content-Type"] == "image/png"


async def test_a_patch_at_the_wrong_offset_is_409_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    """409 names the upload's offset; the bytes sent are not kept."""
    location = (await tus.create(client, 10)).headers["Location"]
    await tus.patch(client, location, 0, b"abc")
    response = await tus.patch(client, location, 1, b"XYZ")
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == "3"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.json()["type"] == "offset_mismatch"
    assert await tus.offset(client, location) == 3


async def test_a_chunk_with_a_wrong_checksum_is_460_and_discarded(
    client: httpx.AsyncClient,
) -> None:
    """Upload-Checksum that does not match: 460, offset unchanged; a matching one is kept."""
    location = (await tus.create(client, 8)).headers["Location"]
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    response = await tus.patch(client, location, 0, b"abcd", {"Upload-Checksum": f"sha1 {wrong}"})
    assert response.status_code == 460
    assert response.json()["type"] == "checksum_mismatch"
    assert await tus.offset(client, location) == 0
    right = base64.b64encode(hashlib.sha256(b"abcd").digest()).decode()
    response = await tus.patch(client, location, 0, b"abcd", {"Upload-Checksum": f"sha256 {right}"})
    assert response.status_code == 204
    assert await tus.offset(client, location) == 4


async def test_an_unknown_checksum_algorithm_is_400(client: httpx.AsyncClient) -> None:
    """A checksum algorithm the server does not announce is refused before any byte."""
    location = (await tus.create(client, 4)).headers["Location"]
    response = await tus.patch(client, location, 0, b"abcd", {"Upload-Checksum": "crc32 AAAA"})
    assert response.status_code == 400
    assert await tus.offset(client, location) == 0


async def test_an_upload_over_the_size_limit_is_413_at_creation(client: httpx.AsyncClient) -> None:
    """Upload-Length over files_max_size is refused before a byte is sent."""
    response = await tus.create(client, (1 << 20) + 1)
    assert response.status_code == 413
    assert response.json()["type"] == "payload_too_large"


async def test_a_body_past_the_declared_length_is_413_and_not_kept(
    client: httpx.AsyncClient,
) -> None:
    """More bytes than Upload-Length: 413, and the upload stays where it was."""
    location = (await tus.create(client, 4)).headers["Location"]
    response = await tus.patch(client, location, 0, b"abcdef")
    assert response.status_code == 413
    assert await tus.offset(client, location) == 0


async def test_a_content_type_off_the_allow_list_is_415(client: httpx.AsyncClient) -> None:
    """A file type the node does not accept is refused at creation."""
    response = await tus.create(client, 10, content_type="text/html")
    assert response.status_code == 415
    assert response.json()["type"] == "content_type_refused"


async def test_a_patch_that_is_not_an_offset_stream_is_415(client: httpx.AsyncClient) -> None:
    """PATCH with another Content-Type is refused."""
    location = (await tus.create(client, 4)).headers["Location"]
    response = await tus.patch(client, location, 0, b"abcd", {"Content-Type": "text/plain"})
    assert response.status_code == 415


async def test_a_request_without_tus_resumable_is_412(client: httpx.AsyncClient) -> None:
    """The protocol version header is required (412 names the supported one)."""
    response = await client.post("/v1/uploads", headers={"Upload-Length": "1"})
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"


@pytest.mark.parametrize(
    "headers",
    [
        {"Upload-Length": "-1"},
        {"Upload-Length": "ten"},
        {},
        {"Upload-Length": "5", "Upload-Metadata": "collection !!!"},
        {"Upload-Length": "5", "Upload-Metadata": metadata(filetype="image/png")},
        {"Upload-Length": "5", "Upload-Metadata": metadata(collection="bad/name")},
        {"Upload-Length": "5", "Upload-Defer-Length": "1"},
    ],
)
async def test_a_malformed_creation_is_400(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Bad lengths, bad metadata or no collection: 400 problem+json with tus headers."""
    response = await client.post("/v1/uploads", headers={**tus.TUS, **headers})
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Tus-Resumable"] == "1.0.0"


async def test_creation_with_upload_takes_the_first_chunk(client: httpx.AsyncClient) -> None:
    """A POST with a body is a creation and a first PATCH at offset 0."""
    response = await client.post(
        "/v1/uploads",
        content=b"hello",
        headers={
            **tus.TUS,
            "Upload-Length": "5",
            "Upload-Metadata": metadata(collection="photos"),
            "Content-Type": tus.STREAM,
        },
    )
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "5"
    assert response.headers["Breakwater-File"] == sha256(b"hello")


async def test_termination_removes_the_upload(client: httpx.AsyncClient) -> None:
    """DELETE ends an upload: HEAD and PATCH then find nothing."""
    location = (await tus.create(client, 10)).headers["Location"]
    assert (await client.delete(location, headers=tus.TUS)).status_code == 204
    assert (await client.head(location, headers=tus.TUS)).status_code == 404
    assert (await tus.patch(client, location, 0, b"x")).status_code == 404


async def test_an_unknown_upload_is_404(client: httpx.AsyncClient) -> None:
    """HEAD of an upload id never created (or a path-like one) is 404."""
    for upload_id in ("nope", "..%2F..%2Fetc"):
        response = await client.head(f"/v1/uploads/{upload_id}", headers=tus.TUS)
        assert response.status_code == 404


async def test_an_empty_file_is_stored_at_creation(client: httpx.AsyncClient) -> None:
    """Upload-Length 0 completes at once."""
    response = await tus.create(client, 0)
    assert response.headers["Breakwater-File"] == sha256(b"")


async def test_a_page_may_speak_tus_across_origins(make_client: Callable[..., Any]) -> None:
    """A preflight allows tus's methods and headers; answers expose Upload-Offset and Location."""
    node: httpx.AsyncClient = await make_client(cors_origins=("https://app.example",))
    origin = {"Origin": "https://app.example"}
    preflight = await node.options(
        "/v1/uploads/x",
        headers={
            **origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable, upload-offset, content-type",
        },
    )
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert {"tus-resumable", "upload-offset", "upload-length", "upload-metadata"} <= {
        h.strip() for h in allowed.split(",")
    }
    created = await tus.create(node, 3, headers=origin)
    exposed = {h.strip() for h in created.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Upload-Offset", "Breakwater-File", "Tus-Resumable"} <= exposed
