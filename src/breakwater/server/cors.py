"""Web pages as callers: which origins may call the node (CORS), for every route and realtime.

A browser names the page's origin in ``Origin`` on every cross-origin request and WebSocket
handshake. An allowed origin gets the CORS headers (preflights answered here, cached by the
browser for ``cors_max_age``); a request from any other page is refused with 403 before it
reaches a route, so a page cannot write through a node it was not allowed to call (a "simple"
cross-origin POST needs no preflight and would otherwise be applied, the answer merely
unreadable). Requests without ``Origin`` (apps, SDKs, curl) and same-origin ones are untouched.

Credentials are bearer tokens in ``Authorization`` (or ``access_token`` on a WebSocket), never
cookies, so ``Access-Control-Allow-Credentials`` is never sent: a page cannot borrow an
ambient credential, whatever the allowed origins.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakwater.auth.settings import is_loopback
from breakwater.config import Config
from breakwater.core.errors import Forbidden
from breakwater.server import problems

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = (
    "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, Last-Event-ID,"
    " X-Request-ID, traceparent, tracestate, Range, If-Range, Tus-Resumable, Upload-Length,"
    " Upload-Metadata, Upload-Offset, Upload-Checksum, Upload-Defer-Length"
)
EXPOSED_HEADERS = (
    "ETag, X-Request-ID, Retry-After, Idempotent-Replayed, WWW-Authenticate, Content-Range,"
    " Accept-Ranges, Location, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size,"
    " Tus-Checksum-Algorithm, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires,"
    " Breakwater-File"
)
"""What the SDKs and browser tus clients read of an answer; a page sees only these and the
CORS-safelisted ones."""


@dataclass(frozen=True)
class Origins:
    """The web origins allowed to call one node."""

    listed: frozenset[str]
    every: bool = False
    loopback: bool = False
    """Pages served from this machine (localhost, 127.0.0.0/8, ::1), any scheme and port."""

    @classmethod
    def of(cls, config: Config) -> Origins:
        """``cors_origins``; when empty, the loopback pages of a node that listens on loopback."""
        listed = frozenset(config.cors_origins)
        return cls(
            listed=listed - {"*"},
            every="*" in listed,
            loopback=not listed and is_loopback(config.host),
        )

    def allows(self, origin: str) -> bool:
        """Whether a page of ``origin`` (as the browser sent it) may call the node."""
        if self.every or origin in self.listed:
            return True
        if not self.loopback:
            return False
        try:
            host = urlsplit(origin).hostname
        except ValueError:
            return False
        return host is not None and is_loopback(host)

    def refusal(self, scope: Scope) -> Forbidden | None:
        """Why a request or handshake from a page must be refused, or None if it may go on."""
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or self.allows(origin) or _same_origin(origin, headers.get("host")):
            return None
        return Forbidden(
            f"pages of origin {origin[:200]!r} may not call this node (cors_origins)",
            origin=origin[:200],
        )


def _same_origin(origin: str, host: str | None) -> bool:
    """The node's own pages (/docs): the origin's host and port are the request's ``Host``."""
    try:
        return host is not None and urlsplit(origin).netloc == host
    except ValueError:
        return False


class Cors:
    """ASGI wrapper: preflights, CORS headers on answers, refusal of other pages' requests."""

    def __init__(self, app: ASGIApp, origins: Origins, max_age: int) -> None:
        self.app = app
        self.origins = origins
        self.max_age = str(max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        refused = self.origins.refusal(scope)
        if refused is not None:
            await problems.error_response(refused)(scope, receive, send)
            return
        if not self.origins.allows(origin):  # same-origin: no CORS headers needed
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = origin
                response_headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: str, scope: Scope, receive: Receive, send: Send) -> None:
        """204 naming what any route accepts; the browser checks the request against it."""
        headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", self.max_age.encode()),
            (b"vary", b"Origin"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
