"""Verifying a JWT another party signed (an ID token, an external access token) with its JWKS.

The header's ``alg`` must be one of the allowed public-key algorithms and fit the key's type, so
``alg: none`` and ``HS256`` keyed with the public key (algorithm confusion) never verify. ``iss``
and ``aud`` must match exactly; ``exp`` and ``iat`` are required; ``leeway`` absorbs clock skew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from breakwater.auth.jwks import JwksCache, PublishedKey
from breakwater.core.errors import Unauthorized

KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class Expectations:
    """What a token from one issuer must say."""

    issuer: str
    audience: str
    algorithms: Sequence[str]
    leeway: float


def header_of(token: str) -> tuple[str, str]:
    """The ``alg`` and ``kid`` of a token's header (not yet trusted)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("the token is malformed") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or not isinstance(kid, str):
        raise Unauthorized("the token's header needs alg and kid")
    return alg, kid


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, to pick who verifies it (checked again after the signature)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


async def verify(token: str, keys: JwksCache, expect: Expectations) -> dict[str, Any]:
    """The claims of a valid token, fetching the issuer's keys when needed."""
    alg, kid = _allowed_header(token, expect)
    return _decode(token, await keys.key(kid), alg, expect)


def verify_cached(token: str, keys: JwksCache, expect: Expectations) -> dict[str, Any]:
    """:func:`verify` with the cached keys only (for callers that cannot wait on the network)."""
    alg, kid = _allowed_header(token, expect)
    return _decode(token, keys.cached(kid), alg, expect)


def _allowed_header(token: str, expect: Expectations) -> tuple[str, str]:
    alg, kid = header_of(token)
    if alg not in expect.algorithms:
        raise Unauthorized(f"the token's algorithm {alg[:16]!r} is not allowed")
    return alg, kid


def _decode(token: str, key: PublishedKey | None, alg: str, expect: Expectations) -> dict[str, Any]:
    if key is None:
        raise Unauthorized("the token was signed with a key the issuer does not publish")
    declared = key.declared_alg
    if KEY_TYPES.get(alg[:2]) != key.jwk.key_type or (declared is not None and declared != alg):
        raise Unauthorized("the token's algorithm does not fit the issuer's key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.jwk.key,
            algorithms=[alg],
            audience=expect.audience,
            issuer=expect.issuer,
            leeway=expect.leeway,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"the token is invalid ({type(exc).__name__})") from None
    if type(claims["exp"]) is not int and type(claims["exp"]) is not float:
        raise Unauthorized("the token is invalid (exp)")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise Unauthorized("the token is invalid (sub)")
    return claims
