"""Who is calling, from the request's credential, and the rate limits every request passes.

:class:`Gatekeeper` is a plain ASGI wrapper in front of the HTTP routes. It reads the
credential once (``Authorization: Bearer <access token>``, ``Authorization: ApiKey <key>``,
or, for EventSource clients that cannot set headers, ``?access_token=`` on the SSE stream),
then applies the rate limits (per account or API key, per address without a credential; see
``rate_limit``). A bad credential is not refused here: the auth endpoints must still work with
a stale token in the header, so the error is kept and raised by :func:`identity_of` when a data
endpoint asks who the caller is.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from breakwater.auth.identity import Identity
from breakwater.auth.settings import within
from breakwater.core.errors import BreakwaterError, Unauthorized
from breakwater.server import problems

if TYPE_CHECKING:
    from breakwater.server.node import Node

API_PREFIX = "/v1/"
SSE_PATH = "/v1/realtime/sse"
Resolved = Identity | BreakwaterError | None
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _query_token(scope: Scope) -> str | None:
    raw = scope.get("query_string", b"")
    if b"access_token=" not in raw:
        return None
    values = parse_qs(raw.decode("latin-1")).get("access_token")
    return values[-1] if values else None


async def resolve(node: Node, scope: Scope, allow_query_token: bool = False) -> Resolved:
    """The caller of ``scope``: an identity, the error of a bad credential, or None."""
    header = _header(scope, b"authorization")
    token: str | None = None
    if header is not None:
        kind, _, value = header.strip().partition(" ")
        value = value.strip()
        if kind.lower() == "bearer" and value:
            token = value
        elif kind.lower() == "apikey" and value:
            try:
                return await node.auth.authenticate_key(value)
            except BreakwaterError as error:
                return error
        else:
            return Unauthorized("Authorization must be 'Bearer <token>' or 'ApiKey <key>'")
    elif allow_query_token:
        token = _query_token(scope)
    if token is None:
        return None
    try:
        return await node.verifier.verify(token)
    except BreakwaterError as error:
        return error


def identity_of(request: Request) -> Identity | None:
    """The verified caller of a request (None: no credential); a bad credential raises 401."""
    resolved: Resolved = request.scope.get("state", {}).get("identity")
    if isinstance(resolved, BreakwaterError):
        raise resolved
    return resolved


def client_ip(scope: Scope, trusted: tuple[IPNetwork, ...] = ()) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    address in ``X-Forwarded-For`` that is not one (the header's other entries are the
    client's own claims and are ignored)."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or not within(peer, trusted):
        return peer
    forwarded = _header(scope, b"x-forwarded-for")
    if not forwarded:
        return peer
    for hop in reversed([part.strip() for part in forwarded.split(",")]):
        if not within(hop, trusted):
            return hop or peer
    return peer


class Gatekeeper:
    """Resolves the caller and applies the rate limits to every HTTP request."""

    def __init__(self, app: ASGIApp, node: Node) -> None:
        self.app = app
        # Given, not read from ``scope["app"].state`` per request (Starlette's ``State``
        # lookup cost as much as the credential check of a request without one).
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            # Probes and metrics (/healthz, /readyz, /metrics) are never limited.
            await self.app(scope, receive, send)
            return
        node = self.node
        path = scope["path"]
        resolved = await resolve(node, scope, allow_query_token=path == SSE_PATH)
        scope.setdefault("state", {})["identity"] = resolved
        caller = resolved if isinstance(resolved, Identity) else None
        try:
            await node.limiter.check(caller, client_ip(scope, node.limiter.trusted), path)
        except BreakwaterError as error:
            await problems.error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
