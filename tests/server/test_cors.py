"""CORS: which web pages may call a node, preflights, and the headers a page may read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakwater.config import ConfigError, load_config
from breakwater.server.cors import Origins

DOC = "/v1/collections/todos/docs/a"
APP = "https://app.example"
OPEN = "[auth]\nmode = 'open'"
"""Off loopback the auth mode would be enforce; these tests are about origins, not tokens."""


def preflight(origin: str, method: str = "PUT") -> dict[str, str]:
    """The headers of a browser's preflight for a JSON write with a bearer token."""
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_a_loopback_node_answers_preflights_of_loopback_pages(
    make_client: Callable[..., Any],
) -> None:
    """With no cors_origins a node on 127.0.0.1 lets a dev server on localhost call it."""
    client: httpx.AsyncClient = await make_client()
    answer = await client.options(DOC, headers=preflight("http://localhost:5173"))
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert answer.headers["access-control-max-age"] == "7200"
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "if-match"} <= set(allowed.split(", "))
    assert "PUT" in answer.headers["access-control-allow-methods"]
    assert "origin" in answer.headers["vary"].lower()
    assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:8000", APP])
async def test_a_node_off_loopback_allows_no_page_by_default(
    make_client: Callable[..., Any], origin: str
) -> None:
    """Outside loopback the default is no origin: preflight and write get 403 and nothing is
    written."""
    client: httpx.AsyncClient = await make_client(OPEN, host="0.0.0.0")
    answer = await client.options(DOC, headers=preflight(origin))
    # A simple request (no preflight) from the page is refused too, not applied unreadably.
    write = await client.put(DOC, json={"v": 1}, headers={"Origin": origin})
    assert (answer.status_code, write.status_code) == (403, 403)
    assert write.headers["content-type"] == "application/problem+json"
    assert write.json()["type"] == "forbidden"
    assert "access-control-allow-origin" not in write.headers
    assert (await client.get(DOC)).status_code == 404


async def test_an_allowed_page_reads_the_headers_the_sdk_needs(
    make_client: Callable[..., Any],
) -> None:
    """Answers to a listed origin name it, vary on Origin and expose ETag, request id and
    Retry-After."""
    client: httpx.AsyncClient = await make_client(OPEN, host="0.0.0.0", cors_origins=(APP,))
    written = await client.put(DOC, json={"v": 1}, headers={"Origin": APP})
    read = await client.get(DOC, headers={"Origin": APP})
    assert (written.status_code, read.status_code) == (201, 200)
    assert read.headers["access-control-allow-origin"] == APP
    exposed = set(read.headers["access-control-expose-headers"].split(", "))
    assert {"ETag", "X-Request-ID", "Retry-After"} <= exposed
    assert "origin" in read.headers["vary"].lower()
    assert "access-control-allow-credentials" not in read.headers


async def test_refusals_to_an_allowed_page_are_readable(make_client: Callable[..., Any]) -> None:
    """A 401 carries the CORS headers, so the page's SDK sees the problem and can refresh."""
    client: httpx.AsyncClient = await make_client(
        "[auth]\nmode = 'enforce'", host="0.0.0.0", cors_origins=(APP,)
    )
    answer = await client.get(DOC, headers={"Origin": APP})
    assert answer.status_code == 401
    assert answer.headers["access-control-allow-origin"] == APP
    assert "WWW-Authenticate" in answer.headers["access-control-expose-headers"]


async def test_requests_without_origin_and_same_origin_ones_are_untouched(
    make_client: Callable[..., Any],
) -> None:
    """Apps and SDKs send no Origin; the node's own /docs page sends its own: both pass."""
    client: httpx.AsyncClient = await make_client(OPEN, host="0.0.0.0")
    plain = await client.put(DOC, json={"v": 1})
    same = await client.get(DOC, headers={"Origin": "http://node"})
    assert (plain.status_code, same.status_code) == (201, 200)
    assert "access-control-allow-origin" not in {*plain.headers, *same.headers}


async def test_star_allows_every_page(make_client: Callable[..., Any]) -> None:
    """``cors_origins = ["*"]`` lets any page call (tokens, not cookies, are the credential)."""
    client: httpx.AsyncClient = await make_client(OPEN, host="0.0.0.0", cors_origins=("*",))
    answer = await client.options(DOC, headers=preflight("https://anyone.example"))
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "https://anyone.example"


hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}\.(example|test|com)", fullmatch=True)


@given(listed=st.lists(hosts, max_size=4), asked=hosts, loopback_node=st.booleans())
def test_only_listed_origins_are_allowed(
    listed: list[str], asked: str, loopback_node: bool
) -> None:
    """A listed origin is allowed; any other non-loopback origin is not, wherever the node
    listens."""
    origins = tuple(f"https://{host}" for host in listed)
    host = "127.0.0.1" if loopback_node else "10.0.0.5"
    config = load_config(
        env={"BREAKWATER_CORS_ORIGINS": ",".join(origins), "BREAKWATER_HOST": host}
    )
    allowed = Origins.of(config)
    assert all(allowed.allows(origin) for origin in origins)
    assert allowed.allows(f"https://{asked}") == (asked in listed)


def test_a_listed_origin_replaces_the_loopback_default() -> None:
    """Once origins are listed, a loopback node allows only those."""
    allowed = Origins.of(load_config(env={"BREAKWATER_CORS_ORIGINS": APP}))
    assert allowed.allows(APP)
    assert not allowed.allows("http://localhost:5173")


@pytest.mark.parametrize(
    "origin",
    ["https://app.example/", "https://App.example", "app.example", "https://u@app.example", "null"],
)
def test_malformed_origins_fail_at_startup(tmp_path: Path, origin: str) -> None:
    """An entry a browser would never send as ``Origin`` is a configuration error."""
    file = tmp_path / "breakwater.toml"
    file.write_text(f"cors_origins = [{origin!r}]")
    with pytest.raises(ConfigError, match="cors_origins names"):
        load_config(file, env={})
