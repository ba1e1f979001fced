"""Pulling one peer region's replication feed over HTTP (gzip on the wire).

Each pull goes to one of the peer's URLs; a URL that fails is left for the next one, so a peer
served by several nodes (or a load balancer and a spare) keeps answering. Bytes are counted
before and after decompression: cross-region traffic is what multi-region costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx

from breakwater.core import codec
from breakwater.core import cursor as cursor_mod
from breakwater.core.cursor import VersionVector
from breakwater.core.errors import ValidationError
from breakwater.core.topology import Peer
from breakwater.replication.wire import (
    Bucket,
    Digest,
    ReplicaPage,
    parse_bucket,
    parse_digest,
    parse_page,
)

FailureKind = Literal["expired", "refused", "unavailable", "bad_answer"]
PULL_PATH = "/v1/replication/pull"
DIGEST_PATH = "/v1/replication/digest"
BUCKET_PATH = "/v1/replication/bucket"
DIGEST_TIMEOUT = 30.0
"""Seconds an anti-entropy request may take: the peer reads every document's summary."""
T = TypeVar("T")


class PullFailed(Exception):
    """A pull that brought nothing: ``kind`` says whether waiting helps."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Pulled:
    """A page and what it cost on the wire (compressed) and as JSON (uncompressed)."""

    page: ReplicaPage
    wire_bytes: int
    json_bytes: int


def peer_http(
    peer: Peer,
    region: str,
    transport: httpx.AsyncBaseTransport | None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An HTTP client that calls ``peer`` with the replication key it issued to ``region``."""
    return httpx.AsyncClient(
        transport=transport,
        # An injected transport is the whole route (tests); proxy variables would bypass it.
        trust_env=transport is None,
        headers={
            "Authorization": f"ApiKey {peer.key}",
            "User-Agent": f"breakwater-replicator/{region}",
            **(headers or {}),
        },
    )


class PeerClient:
    """Pulls from one peer region with the replication key it issued to this region."""

    def __init__(
        self,
        peer: Peer,
        region: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 3.0,
    ) -> None:
        self.peer = peer
        self.region = region
        self._next_url = 0
        self._connect_timeout = connect_timeout
        self._http = peer_http(peer, region, transport, {"Accept-Encoding": "gzip"})

    @property
    def url(self) -> str:
        """The peer URL the next pull goes to."""
        return self.peer.urls[self._next_url % len(self.peer.urls)]

    async def pull(
        self,
        vector: VersionVector,
        limit: int,
        wait: float,
        *,
        held: VersionVector | None = None,
        transfer: bool = False,
    ) -> Pulled:
        """One page past ``vector``; :class:`PullFailed` when there is none. ``held``: what this
        region durably holds when that is behind ``vector`` (a pull sent before the previous
        page is applied; only to a peer whose pages say ``accepts_held``). ``transfer``: a full
        state transfer's page, served past the peer's retention horizon."""
        params = {
            "cursor": cursor_mod.encode(vector),
            "limit": str(limit),
            "wait": str(wait),
            "region": self.region,
        }
        if held is not None:
            params["held"] = cursor_mod.encode(held)
        if transfer:
            params["transfer"] = "true"
        body, wire = await self._get(PULL_PATH, params, wait + 10.0)
        page = self._parse(body, parse_page)
        self._check_region(page.region)
        return Pulled(page, wire, len(body))

    async def digest(self, buckets: int) -> Digest:
        """The peer's anti-entropy digests with ``buckets`` buckets per collection."""
        body, _ = await self._get(DIGEST_PATH, {"buckets": str(buckets)}, DIGEST_TIMEOUT)
        answer = self._parse(body, parse_digest)
        self._check_region(answer.region)
        return answer

    async def bucket(self, collection: str, bucket: int, buckets: int) -> Bucket:
        """Every document of one of the peer's buckets, with full states."""
        params = {"collection": collection, "bucket": str(bucket), "buckets": str(buckets)}
        body, _ = await self._get(BUCKET_PATH, params, DIGEST_TIMEOUT)
        answer = self._parse(body, lambda parsed: parse_bucket(parsed, collection))
        self._check_region(answer.region)
        return answer

    async def _get(self, path: str, params: dict[str, str], seconds: float) -> tuple[bytes, int]:
        """The body of a 200 answer and its wire size; :class:`PullFailed` otherwise."""
        timeout = httpx.Timeout(seconds, connect=self._connect_timeout)
        url = self.url
        try:
            response = await self._http.get(url + path, params=params, timeout=timeout)
            body = response.content
        except (httpx.HTTPError, AttributeError) as exc:
            # AttributeError: asyncio's transport loses its socket when the peer resets the
            # connection as it is made, and the connect step then reads the peer name of
            # ``None``; seen through a proxy that cuts links (the chaos tests).
            self._next_url += 1  # the next try goes to the peer's next URL
            raise PullFailed("unavailable", f"{url}: {type(exc).__name__}") from exc
        if response.status_code == 410:
            raise PullFailed("expired", f"{url}: {_problem_type(body)}")
        if response.status_code in (401, 403):
            raise PullFailed("refused", f"{url}: {response.status_code} {_problem_type(body)}")
        if response.status_code != 200:
            self._next_url += 1
            raise PullFailed("unavailable", f"{url}: HTTP {response.status_code}")
        return body, response.num_bytes_downloaded

    def _parse(self, body: bytes, parse: Callable[[Any], T]) -> T:
        try:
            return parse(codec.parse_body(body, "replication answer"))
        except (ValueError, ValidationError) as exc:
            raise PullFailed("bad_answer", f"{self.url}: {exc}") from exc

    def _check_region(self, region: str) -> None:
        if region.lower() != self.peer.name.lower():
            raise PullFailed(
                "bad_answer", f"{self.url} answers as region {region!r}, not {self.peer.name!r}"
            )

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()


def _problem_type(body: bytes) -> str:
    try:
        problem = codec.loads(body)
    except ValueError:
        return "no problem+json"
    return str(problem.get("type")) if isinstance(problem, dict) else "no problem+json"
