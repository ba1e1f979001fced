"""Fetching a file from a peer region: the bytes must hash to the file's name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from breakwater.core.topology import Peer
from breakwater.replication.client import PullFailed
from breakwater.replication.files import INFO_HEADER, PeerFiles

DATA = b"the bytes of a photo"
SHA = hashlib.sha256(DATA).hexdigest()
INFO = {"content_type": "image/png", "collection": "photos", "uploader": "u1", "created": 1.0}


def peer_answering(status: int, body: bytes, seen: list[httpx.Request]) -> PeerFiles:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {INFO_HEADER: json.dumps(INFO)}
        return httpx.Response(status, stream=httpx.ByteStream(body), headers=headers)

    peer = Peer("eu", ("http://eu.test",), (), key="bw_replication_key")
    return PeerFiles(peer, "us", transport=httpx.MockTransport(answer))


async def test_a_file_is_fetched_with_the_replication_key_and_verified(tmp_path: Path) -> None:
    """The peer's bytes land fsynced in staging with the peer's info; the key is sent."""
    seen: list[httpx.Request] = []
    files = peer_answering(200, DATA, seen)
    fetched = await files.fetch(SHA, tmp_path)
    await files.aclose()
    assert fetched is not None and fetched.path.read_bytes() == DATA
    assert (fetched.size, fetched.info) == (len(DATA), INFO)
    assert seen[0].url.path == f"/v1/replication/files/{SHA}"
    assert seen[0].headers["authorization"] == "ApiKey bw_replication_key"


async def test_bytes_that_hash_otherwise_are_refused_and_left_nowhere(tmp_path: Path) -> None:
    """A peer that sends other bytes under the name gives nothing: bad_answer, staging empty."""
    files = peer_answering(200, DATA + b"!", [])
    with pytest.raises(PullFailed) as failed:
        await files.fetch(SHA, tmp_path)
    await files.aclose()
    assert failed.value.kind == "bad_answer"
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 (a test's tmp_path)


@pytest.mark.parametrize(("status", "kind"), [(403, "refused"), (502, "unavailable")])
async def test_a_peer_that_refuses_or_fails_is_a_pull_failure(
    tmp_path: Path, status: int, kind: str
) -> None:
    """A refused key and a failing peer are told apart; a 404 means the peer lacks it."""
    files = peer_answering(status, b"{}", [])
    with pytest.raises(PullFailed) as failed:
        await files.fetch(SHA, tmp_path)
    assert failed.value.kind == kind
    missing = peer_answering(404, b"{}", [])
    assert await missing.fetch(SHA, tmp_path) is None
    await files.aclose()
    await missing.aclose()
