"""A minimal tus client for tests: the requests a tus client sends, one call each."""

from __future__ import annotations

import httpx

from tests.files.conftest import metadata

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = "application/offset+octet-stream"


async def create(
    client: httpx.AsyncClient,
    length: int,
    collection: str = "photos",
    content_type: str = "image/png",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /v1/uploads for ``length`` bytes into ``collection``."""
    return await client.post(
        "/v1/uploads",
        headers={
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(collection=collection, filetype=content_type),
            **(headers or {}),
        },
    )


async def patch(
    client: httpx.AsyncClient,
    location: str,
    offset: int,
    chunk: bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """PATCH ``chunk`` at ``offset``."""
    return await client.patch(
        location,
        content=chunk,
        headers={**TUS, "Upload-Offset": str(offset), "Content-Type": STREAM, **(headers or {})},
    )


async def offset(
    client: httpx.AsyncClient, location: str, headers: dict[str, str] | None = None
) -> int:
    """HEAD: the upload's offset."""
    response = await client.head(location, headers={**TUS, **(headers or {})})
    assert response.status_code == 200, response.headers
    return int(response.headers["Upload-Offset"])


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    collection: str = "photos",
    headers: dict[str, str] | None = None,
) -> str:
    """Upload ``data`` in one PATCH; the stored file's SHA-256."""
    created = await create(client, len(data), collection, headers=headers)
    assert created.status_code == 201, created.text
    done = await patch(client, created.headers["Location"], 0, data, headers)
    assert done.status_code == 204, done.text
    return done.headers["Breakwater-File"]
