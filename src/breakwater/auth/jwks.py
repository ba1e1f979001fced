"""An identity provider's published documents: its discovery document and its keys (JWKS).

Keys are cached for ``ttl`` seconds. A token signed with a ``kid`` the cache does not know makes
it fetch the set again (the provider rotated its keys), but at most once per ``min_refresh``
seconds, so a stream of tokens with made-up ``kid`` values cannot turn this node into a flood
against the provider. A fetch replaces the whole set: a key the provider removed is refused from
then on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from breakwater.core.errors import Unavailable

MAX_DOCUMENT_BYTES = 512 * 1024
FETCH_TIMEOUT_SECONDS = 5.0
FetchJson = Callable[[str], Awaitable[dict[str, Any]]]


async def fetch_json(url: str) -> dict[str, Any]:
    """A JSON object from ``url``; ``Unavailable`` (503) when the provider cannot answer."""
    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"status {response.status_code}")
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable(f"the identity provider did not answer ({type(exc).__name__})") from None
    return body


class Discovery:
    """``/.well-known/openid-configuration`` of one issuer, cached for ``ttl`` seconds."""

    def __init__(
        self,
        issuer: str,
        ttl: float,
        fetch: FetchJson = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.ttl = ttl
        self.fetch = fetch
        self.clock = clock
        self._document: dict[str, Any] | None = None
        self._fetched = 0.0

    async def document(self) -> dict[str, Any]:
        """The discovery document; its ``issuer`` must be exactly the configured one."""
        if self._document is None or self.clock() - self._fetched > self.ttl:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self.fetch(url)
            if document.get("issuer") != self.issuer:
                raise Unavailable("the identity provider's discovery names another issuer")
            self._document, self._fetched = document, self.clock()
        return self._document

    async def endpoint(self, name: str) -> str:
        """A URL from the document (``jwks_uri``, ``token_endpoint``, ...)."""
        value = (await self.document()).get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise Unavailable(f"the identity provider's discovery has no {name}")
        return value


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """A verifying key and the algorithm its JWK declares (``alg``), if it declares one."""

    jwk: jwt.PyJWK
    declared_alg: str | None


class JwksCache:
    """The public keys of one issuer by ``kid``."""

    def __init__(
        self,
        locate: Callable[[], Awaitable[str]],
        ttl: float,
        min_refresh: float,
        fetch: FetchJson = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.locate = locate
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.fetch = fetch
        self.clock = clock
        self.fetches = 0
        self._keys: dict[str, PublishedKey] = {}
        self._fetched: float | None = None
        self._attempted: float | None = None
        self._lock = asyncio.Lock()

    def cached(self, kid: str) -> PublishedKey | None:
        """The key ``kid`` from the cache alone (no network), while the cache is fresh."""
        if self._fetched is None or self.clock() - self._fetched > self.ttl:
            return None
        return self._keys.get(kid)

    async def key(self, kid: str) -> PublishedKey | None:
        """The key ``kid``, fetching the set when it is stale or lacks ``kid`` (rate limited)."""
        known = self.cached(kid)
        if known is not None:
            return known
        async with self._lock:
            now = self.clock()
            stale = self._fetched is None or now - self._fetched > self.ttl
            recent = self._attempted is not None and now - self._attempted < self.min_refresh
            if (stale or kid not in self._keys) and not recent:
                self._attempted = now
                await self._refresh()
        return self.cached(kid)

    async def _refresh(self) -> None:
        document = await self.fetch(await self.locate())
        self.fetches += 1
        keys: dict[str, PublishedKey] = {}
        entries = document.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig" or "d" in entry:
                continue  # encryption keys, and a private key published by mistake
            declared = entry.get("alg")
            try:
                keys[entry["kid"]] = PublishedKey(
                    jwt.PyJWK(entry), declared if isinstance(declared, str) else None
                )
            except jwt.PyJWTError:
                continue  # a key type this node cannot use; the others still work
        self._keys, self._fetched = keys, self.clock()
