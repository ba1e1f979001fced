"""Downloads: Range, ETag and If-None-Match, cache policy, access through documents, signed
URLs; on disk and S3 alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.auth.conftest import RULES, User, sign_up
from tests.files import tus
from tests.files.conftest import sha256

DATA = bytes(range(256)) * 16


@pytest.fixture
async def client(make_client: Callable[..., Any], files_store: str) -> httpx.AsyncClient:
    """An open-mode node whose files go to each backend."""
    node: httpx.AsyncClient = await make_client(files_store=files_store)
    return node


@pytest.fixture
async def rules(make_client: Callable[..., Any], files_store: str) -> httpx.AsyncClient:
    """An enforce-mode node: ``notes`` readable by their owner (or when public), ``open`` by all."""
    node: httpx.AsyncClient = await make_client(RULES, files_store=files_store)
    return node


async def test_a_range_gives_206_with_exactly_those_bytes(client: httpx.AsyncClient) -> None:
    """bytes=a-b, a suffix and an open end each answer 206 with Content-Range."""
    name = await tus.upload(client, DATA)
    for header, start, end in [
        ("bytes=10-19", 10, 20),
        ("bytes=-5", len(DATA) - 5, len(DATA)),
        ("bytes=4000-", 4000, len(DATA)),
        ("bytes=4090-99999", 4090, len(DATA)),
    ]:
        response = await client.get(f"/v1/files/{name}", headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == DATA[start:end]
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"


async def test_a_range_past_the_end_is_416(client: httpx.AsyncClient) -> None:
    """A range that names no byte is 416 problem+json."""
    name = await tus.upload(client, DATA)
    response = await client.get(f"/v1/files/{name}", headers={"Range": f"bytes={len(DATA)}-"})
    assert response.status_code == 416


async def test_an_unusable_range_or_stale_if_range_sends_the_whole_file(
    client: httpx.AsyncClient,
) -> None:
    """Several ranges, another unit, or an If-Range that does not match: 200, every byte."""
    name = await tus.upload(client, DATA)
    for headers in [
        {"Range": "bytes=0-1,5-6"},
        {"Range": "items=0-1"},
        {"Range": "bytes=0-1", "If-Range": '"other"'},
    ]:
        response = await client.get(f"/v1/files/{name}", headers=headers)
        assert response.status_code == 200
        assert response.content == DATA


async def test_the_etag_is_the_hash_and_if_none_match_gives_304(
    client: httpx.AsyncClient,
) -> None:
    """Strong ETag = SHA-256; a revalidation with it is 304 without a body."""
    name = await tus.upload(client, DATA)
    response = await client.get(f"/v1/files/{name}")
    assert response.headers["ETag"] == f'"{name}"'
    again = await client.get(f"/v1/files/{name}", headers={"If-None-Match": f'"{name}"'})
    assert again.status_code == 304
    assert again.content == b""
    other = await client.get(f"/v1/files/{name}", headers={"If-None-Match": '"abc"'})
    assert other.status_code == 200


async def test_a_file_anyone_may_read_is_cacheable_by_shared_caches(
    client: httpx.AsyncClient,
) -> None:
    """Open collection: public, a year, immutable; and never runnable as a page."""
    name = await tus.upload(client, DATA)
    response = await client.get(f"/v1/files/{name}")
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    head = await client.head(f"/v1/files/{name}")
    assert head.headers["Content-Length"] == str(len(DATA))


async def test_an_unknown_file_is_404(client: httpx.AsyncClient) -> None:
    """A hash that is not stored, and a name that is no hash, are 404."""
    assert (await client.get(f"/v1/files/{'a' * 64}")).status_code == 404
    assert (await client.get("/v1/files/not-a-hash")).status_code == 404


async def _upload_as(node: httpx.AsyncClient, user: User, collection: str = "notes") -> str:
    return await tus.upload(node, DATA, collection, headers=user.headers)


async def test_a_file_of_a_document_the_caller_cannot_read_is_refused(
    rules: httpx.AsyncClient,
) -> None:
    """Bob may not read Alice's private note, so not the file it refers to either (403)."""
    alice = await sign_up(rules, "alice@example.com")
    bob = await sign_up(rules, "bob@example.com")
    name = await _upload_as(rules, alice)
    put = await rules.put(
        "/v1/collections/notes/docs/n1", json={"photo": {"$file": name}}, headers=alice.headers
    )
    assert put.status_code == 201, put.text
    mine = await rules.get(f"/v1/files/{name}?doc=notes/n1", headers=alice.headers)
    assert mine.status_code == 200
    assert mine.content == DATA
    assert mine.headers["Cache-Control"].startswith("private")
    refused = await rules.get(f"/v1/files/{name}?doc=notes/n1", headers=bob.headers)
    assert refused.status_code == 403
    assert (await rules.get(f"/v1/files/{name}", headers=bob.headers)).status_code == 404
    assert (await rules.get(f"/v1/files/{name}")).status_code == 401


async def test_a_readable_document_that_does_not_refer_to_the_file_opens_nothing(
    rules: httpx.AsyncClient,
) -> None:
    """Naming a public document that does not hold the file's hash is 403."""
    alice = await sign_up(rules, "alice@example.com")
    bob = await sign_up(rules, "bob@example.com")
    name = await _upload_as(rules, alice)
    await rules.put(
        "/v1/collections/notes/docs/pub",
        json={"public": True, "text": "no file"},
        headers=bob.headers,
    )
    response = await rules.get(f"/v1/files/{name}?doc=notes/pub", headers=bob.headers)
    assert response.status_code == 403


async def test_a_public_document_shares_its_file(rules: httpx.AsyncClient) -> None:
    """Once Alice marks the note public, Bob may read its file through it."""
    alice = await sign_up(rules, "alice@example.com")
    bob = await sign_up(rules, "bob@example.com")
    name = await _upload_as(rules, alice)
    await rules.put(
        "/v1/collections/notes/docs/n1",
        json={"public": True, "photos": [{"$file": name, "caption": "x"}]},
        headers=alice.headers,
    )
    response = await rules.get(f"/v1/files/{name}?doc=notes/n1", headers=bob.headers)
    assert response.status_code == 200
    assert response.content == DATA


async def test_an_upload_needs_write_access_to_its_collection(rules: httpx.AsyncClient) -> None:
    """Without a credential 401; into a collection with no write rule 403."""
    assert (await tus.create(rules, 10, "notes")).status_code == 401
    alice = await sign_up(rules, "alice@example.com")
    response = await tus.create(rules, 10, "secret", headers=alice.headers)
    assert response.status_code == 403


async def test_only_the_creator_may_resume_an_upload(rules: httpx.AsyncClient) -> None:
    """Another user's HEAD, PATCH and DELETE of an upload find nothing (404)."""
    alice = await sign_up(rules, "alice@example.com")
    bob = await sign_up(rules, "bob@example.com")
    location = (await tus.create(rules, 10, "notes", headers=alice.headers)).headers["Location"]
    assert (await rules.head(location, headers={**tus.TUS, **bob.headers})).status_code == 404
    patched = await tus.patch(rules, location, 0, b"x", bob.headers)
    assert patched.status_code == 404
    assert await tus.offset(rules, location, alice.headers) == 0


async def test_a_signed_url_opens_the_file_until_it_expires(rules: httpx.AsyncClient) -> None:
    """A reader gets a signed URL; it works without a credential, tampered or late it does not."""
    alice = await sign_up(rules, "alice@example.com")
    name = await _upload_as(rules, alice)
    await rules.put(
        "/v1/collections/notes/docs/n1", json={"photo": {"$file": name}}, headers=alice.headers
    )
    made = await rules.post(f"/v1/files/{name}/url?doc=notes/n1&ttl=60", headers=alice.headers)
    assert made.status_code == 200, made.text
    url = made.json()["url"]
    assert "access_token" not in url
    assert (await rules.get(url)).content == DATA
    tampered = url.replace("expires=", "expires=9")
    assert (await rules.get(tampered)).status_code == 403
    other = url.replace(name, sha256(b"other"))
    assert (await rules.get(other)).status_code == 403
    node = rules.app.state.node  # type: ignore[attr-defined]
    node.files.clock = lambda: made.json()["expires"] + 1.0
    assert (await rules.get(url)).status_code == 403


async def test_a_signed_url_is_only_made_for_a_reader(rules: httpx.AsyncClient) -> None:
    """Bob cannot get a signed URL for Alice's private file."""
    alice = await sign_up(rules, "alice@example.com")
    bob = await sign_up(rules, "bob@example.com")
    name = await _upload_as(rules, alice)
    await rules.put(
        "/v1/collections/notes/docs/n1", json={"photo": {"$file": name}}, headers=alice.headers
    )
    made = await rules.post(f"/v1/files/{name}/url?doc=notes/n1", headers=bob.headers)
    assert made.status_code == 403


async def test_uploads_and_downloads_are_counted(client: httpx.AsyncClient) -> None:
    """/metrics counts created and completed uploads, their bytes and downloads by how."""
    name = await tus.upload(client, DATA)
    await client.get(f"/v1/files/{name}")
    text = (await client.get("/metrics")).text
    assert 'breakwater_file_uploads_total{stage="completed"} 1.0' in text
    assert f"breakwater_file_upload_bytes_total {float(len(DATA))}" in text
    assert 'breakwater_file_downloads_total{via="open"} 1.0' in text
